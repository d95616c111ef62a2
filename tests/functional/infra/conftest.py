"""Fixtures for infra tests (helpers live in infra_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from infra_helpers import MOTO_CONFIG, REGION, FakeBuilder, RunningConnector, SleepCounter, start_connector
from moto import mock_aws

from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.connector.service import ConnectorSettings
from dify_lambda.infra.deployer import Deployer


@pytest.fixture
def aws() -> Iterator[AwsClients]:
    with mock_aws(config=MOTO_CONFIG):
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        yield AwsClients(
            region=REGION,
            lambda_=session.client("lambda"),
            iam=session.client("iam"),
            s3=session.client("s3"),
            ssm=session.client("ssm"),
            sts=session.client("sts"),
        )


@pytest.fixture
def deployer(aws: AwsClients) -> Deployer:
    return Deployer(aws, sleep=SleepCounter())


@pytest.fixture
def connector(aws: AwsClients, tmp_path: Path) -> Iterator[RunningConnector]:
    builder = FakeBuilder()
    server, service, thread = start_connector(
        aws, builder, settings=ConnectorSettings(daemon_url="http://daemon.internal:5002"), work_root=tmp_path
    )
    try:
        yield RunningConnector(server, service, builder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
