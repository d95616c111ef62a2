"""A connector in a process of its own, for signal tests: moto in-process, a build that never ends.

Usage: ``python connector_proc.py WORK_DIR``. Prints the URL, serves until SIGTERM/SIGINT, then
prints one JSON line: the functions left in (moto's) Lambda, the entries left in WORK_DIR and the
network attempts that went anywhere but loopback.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "functional" / "infra")]

import boto3  # noqa: E402
from infra_helpers import API_KEY, MOTO_CONFIG, REGION, FakeBuilder, SleepCounter  # noqa: E402
from moto import mock_aws  # noqa: E402

from dify_lambda.infra.artifact import BuiltArtifact, Progress  # noqa: E402
from dify_lambda.infra.aws import AwsClients  # noqa: E402
from dify_lambda.infra.builder import BuildRequest  # noqa: E402
from dify_lambda.infra.connector.server import make_server, serve_until_signalled  # noqa: E402
from dify_lambda.infra.connector.service import LaunchService  # noqa: E402
from dify_lambda.infra.deployer import Deployer  # noqa: E402
from support.egress import Egress  # noqa: E402


class EndlessBuilder(FakeBuilder):
    """Reports progress forever, like a long dependency install; stops only when cancelled."""

    def __call__(self, request: BuildRequest, progress: Progress) -> BuiltArtifact:
        (request.out_dir / "partial-build").write_text("x")
        while True:
            progress("still resolving dependencies")
            time.sleep(0.05)


def main() -> int:
    work = Path(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with Egress() as egress, mock_aws(config=MOTO_CONFIG):
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        aws = AwsClients(
            region=REGION,
            lambda_=session.client("lambda"),
            iam=session.client("iam"),
            s3=session.client("s3"),
            ssm=session.client("ssm"),
            sts=session.client("sts"),
        )
        service = LaunchService(Deployer(aws, sleep=SleepCounter()), EndlessBuilder(), work_root=work)
        server = make_server("127.0.0.1", 0, service, api_key=API_KEY, max_package_bytes=8 << 20)
        print(server.url, flush=True)
        done = serve_until_signalled(server, drain_timeout_s=60)
        functions = [f["FunctionName"] for f in aws.lambda_.list_functions()["Functions"]]
    report = {
        "done": done,
        "functions": functions,
        "work_left": sorted(p.name for p in work.iterdir()),
        "egress": [str(a) for a in egress.outside()],
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
