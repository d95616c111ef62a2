"""The built x86_64 artifact loads its plugin in both SDK import modes (python3.12 -S, artifact only)."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from dify_lambda.handlers.sdk_import import MODE_ENV
from dify_lambda.packaging.build import build
from dify_lambda.packaging.build.options import BuildOptions
from dify_lambda.packaging.interpreters import find_interpreter

# One xdist worker runs the module (--dist loadgroup): a built artifact, once per run.
pytestmark = pytest.mark.xdist_group("test_sdk_import_artifact")

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"

# Unlike the builder's own load test, nothing imports dify_plugin before the handler does.
SCRIPT = """
import json, socket, sys
from dify_lambda.handlers.app import application_from_env, buffered_result
app = application_from_env()
import gevent.socket
event = {"version": "2.0", "rawPath": "/health", "rawQueryString": "", "headers": {},
         "requestContext": {"http": {"method": "GET", "path": "/health"},
             "authorizer": {"iam": {"userArn": "arn:aws:iam::123456789012:user/t"}}},
         "isBase64Encoded": False}
health = buffered_result(app.handle_event(event))
sdk = sys.modules["dify_plugin"]
print(json.dumps({"package": type(sdk).__name__, "sdk": sdk.__file__,
                  "patched": socket.socket is gevent.socket.socket, "status": health["statusCode"]}))
"""


@pytest.fixture(scope="module")
def task_root(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Same wheel cache as the builder tests, so the build downloads nothing twice.
    assert pytestconfig.cache is not None
    cache = os.environ.get("DIFY_LAMBDA_TEST_CACHE") or str(pytestconfig.cache.mkdir("dify-lambda-build"))
    out = tmp_path_factory.mktemp("sdk-import-artifact")
    result = build(PLUGINS / "mockgpt", out / "build", BuildOptions(arch="x86_64", cache_dir=Path(cache)))
    root = out / "task"
    with zipfile.ZipFile(result.artifact) as zf:
        zf.extractall(root)
    return root


@pytest.mark.parametrize(
    ("mode", "package", "patched"), [("lazy", "LazySdkPackage", False), ("full", "module", True)]
)
def test_artifact_loads_its_plugin(
    task_root: Path, tmp_path: Path, mode: str, package: str, patched: bool
) -> None:
    python = find_interpreter("3.12")
    if python is None:
        pytest.skip("no local python3.12 to run the artifact with")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(task_root),
        "DIFY_LAMBDA_PLUGIN_ROOT": str(task_root / "plugin"),
        "DIFY_LAMBDA_URL_AUTH": "AWS_IAM",
        "HOME": str(tmp_path),
        MODE_ENV: mode,
    }
    proc = subprocess.run(
        [str(python), "-S", "-c", SCRIPT],
        cwd=task_root / "plugin",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sdk"].startswith(str(task_root)), "dify_plugin must come from the artifact"
    assert out["package"] == package
    assert out["patched"] is patched
    assert out["status"] == 200
