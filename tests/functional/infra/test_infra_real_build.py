"""The connector with the real builder on a demo plugin (downloads wheels once, then cached)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from infra_helpers import API_KEY, start_connector
from support.daemon_client import DaemonClient

from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.builder import BuildRequest, packaging_builder
from dify_lambda.infra.connector.service import ConnectorSettings
from dify_lambda.packaging.packager import zip_files
from dify_lambda.packaging.reader import PluginPackage
from dify_lambda.wire import ALIAS_NAME

pytestmark = pytest.mark.slow

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"


@pytest.fixture(scope="session")
def build_cache(pytestconfig: pytest.Config) -> Path:
    env = os.environ.get("DIFY_LAMBDA_TEST_CACHE")
    return Path(env) if env else Path(pytestconfig.cache.mkdir("dify-lambda-build"))


def test_launch_builds_and_deploys_mockgpt(aws: AwsClients, build_cache: Path, tmp_path: Path) -> None:
    data = zip_files(PluginPackage.from_directory(PLUGINS / "mockgpt").files())
    pkg = PluginPackage.from_bytes(data)
    builder = packaging_builder(cache_dir=build_cache)
    server, _service, thread = start_connector(
        aws, builder, settings=ConnectorSettings(daemon_url="http://daemon:5002"), work_root=tmp_path
    )
    try:
        client = DaemonClient(server.url, API_KEY)
        outcome = client.launch(data, pkg.serverless_filename)
        found = client.find_instance(pkg.serverless_filename)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert outcome.ok, outcome.error
    build_lines = [c["Message"] for c in outcome.chunks if c["Stage"] == "build"]
    assert any("ResolveDependencies" in line for line in build_lines), build_lines
    assert found is not None and found.name == outcome.function_name

    cfg = aws.lambda_.get_function_configuration(FunctionName=outcome.function_name, Qualifier=ALIAS_NAME)
    assert cfg["Handler"] == "dify_lambda.handlers.buffered.lambda_handler"
    assert cfg["Runtime"] == f"python{pkg.manifest.meta.runner.version}"
    env = cfg["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/var/task/dify_lambda/handlers/exec_wrapper.sh"
    assert env["DIFY_LAMBDA_PLUGIN_ROOT"] == "/var/task/plugin"
    assert env["INSTALL_METHOD"] == "serverless"
    assert env["DIFY_LAMBDA_URL_AUTH"] == "NONE"
    assert env["DIFY_PLUGIN_DAEMON_URL"] == "http://daemon:5002"
    assert outcome.function_url and outcome.function_url.endswith("/" + env["DIFY_LAMBDA_SECRET"])
    # The launch's work dir is gone; builds are deterministic, so a rebuild from the cache must
    # hash to exactly the code Lambda holds.
    rebuilt = builder(
        BuildRequest(package=pkg, out_dir=tmp_path / "again", url_auth="NONE"), lambda _line: None
    )
    digest = base64.b64encode(hashlib.sha256(rebuilt.path.read_bytes()).digest()).decode()
    assert cfg["CodeSha256"] == digest, "builds are deterministic and the deployer uploads them unchanged"


def test_launch_of_a_plugin_that_cannot_start_ends_failed(
    aws: AwsClients, build_cache: Path, tmp_path: Path
) -> None:
    # The real builder's smoke init runs inside the launch: no function is deployed that cannot start.
    files = dict(PluginPackage.from_directory(PLUGINS / "mocklab").files())
    files["provider/mocklab.py"] += b"\nraise RuntimeError('mocklab refuses to start')\n"
    data = zip_files(files)
    pkg = PluginPackage.from_bytes(data)
    server, _service, thread = start_connector(
        aws, packaging_builder(cache_dir=build_cache), settings=ConnectorSettings(), work_root=tmp_path
    )
    try:
        client = DaemonClient(server.url, API_KEY)
        outcome = client.launch(data, pkg.serverless_filename)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert not outcome.ok
    last = outcome.chunks[-1]
    assert (last["Stage"], last["State"]) == ("build", "failed")
    assert "build:SmokeInit - the plugin cannot load from the artifact" in last["Message"]
    assert "mocklab refuses to start" in last["Message"]
    assert aws.lambda_.list_functions()["Functions"] == []
