"""The compose override in docs/dify-integration.md is valid Compose, and wires what the router needs.

The override is validated against the Compose Specification's JSON schema as shipped in the
docker-compose 1.29.2 wheel (``compose/config/compose_spec.json``), fetched with ``pip download``
(pip's cache is reused) and read from the wheel without installing it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dify_lambda import __version__

# One xdist worker runs the module (--dist loadgroup): a downloaded schema, once per run.
pytestmark = pytest.mark.xdist_group("test_router_compose_doc")

DOC = Path(__file__).resolve().parents[3] / "docs" / "dify-integration.md"
OVERRIDE_MARK = "# docker-compose.override.yaml"
SCHEMA_DIST = "docker-compose==1.29.2"
SCHEMA_MEMBER = "compose/config/compose_spec.json"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.M | re.S)


def _override() -> dict[str, Any]:
    (block,) = [b for b in _blocks("yaml") if b.startswith(OVERRIDE_MARK)]
    loaded: dict[str, Any] = yaml.safe_load(block)
    return loaded


@pytest.fixture(scope="module")
def compose_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    dest = tmp_path_factory.mktemp("compose-schema")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), SCHEMA_DIST],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = dest.glob("docker_compose-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        schema: dict[str, Any] = json.loads(zf.read(SCHEMA_MEMBER))
    return schema


@pytest.mark.slow
def test_override_validates_against_the_compose_spec_schema(compose_schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft201909Validator(compose_schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_override())
    ]
    assert errors == []
    # The schema does reject a broken override (the check is not vacuous).
    broken = _override()
    broken["services"]["api"]["volumes"][0]["read_only"] = "yes"
    assert not validator.is_valid(broken)


def test_override_mounts_the_route_file_read_only_where_the_env_points() -> None:
    services = _override()["services"]
    assert set(services) == {"api", "worker"}
    for service in services.values():
        (mount,) = service["volumes"]
        assert mount["read_only"] is True and mount["type"] == "bind"
        assert service["environment"]["DIFY_LAMBDA_ROUTES"] == mount["target"]
        assert service["build"]["context"] == "./dify-lambda"
    assert services["api"]["image"] == services["worker"]["image"]


def test_doc_commands_name_the_wheel_this_version_builds() -> None:
    wheel = f"dify_lambda-{__version__}-py3-none-any.whl"
    (dockerfile,) = _blocks("dockerfile")
    assert f"COPY {wheel} /tmp/" in dockerfile
    assert "_dl.enable()" in dockerfile
    assert any(wheel in block and "pip wheel --no-deps" in block for block in _blocks("sh"))
