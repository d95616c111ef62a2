"""Route sources with real I/O: route files, Lambda tag discovery against moto, and the light import."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dify_lambda import wire
from dify_lambda.router.errors import InvalidRouteTableError, RouteSourceError
from dify_lambda.router.sources import load_route_file, routes_from_tags

YAML = """
routes:
  langgenius/openai:
    deployments:
      - url: https://abc.lambda-url.us-east-1.on.aws/
      - url: https://def.lambda-url.eu-west-1.on.aws/
        auth: secret
        secret_env: OPENAI_FN_SECRET
        weight: 2
"""


def test_yaml_and_json_files(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(YAML)
    table = load_route_file(tmp_path / "routes.yaml")
    deps = table.routes["langgenius/openai"].deployments
    assert [(d.region, d.auth, d.weight) for d in deps] == [
        ("us-east-1", "iam", 1.0),
        ("eu-west-1", "secret", 2.0),
    ]
    (tmp_path / "routes.json").write_text(
        json.dumps({"routes": {"a/b": {"deployments": [{"url": deps[0].url}]}}})
    )
    assert load_route_file(tmp_path / "routes.json").plugin_ids == ("a/b",)


def test_bad_files_name_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(YAML.replace("https://def.lambda-url.eu-west-1.on.aws/", "ftp://nowhere"))
    with pytest.raises(InvalidRouteTableError) as info:
        load_route_file(path)
    assert str(info.value).startswith("routes.yaml: routes['langgenius/openai'].deployments[1].url: ")
    path.write_text("routes: [unclosed")
    with pytest.raises(InvalidRouteTableError, match=r"routes\.yaml: invalid YAML at line 1"):
        load_route_file(path)
    (tmp_path / "r.json").write_text("{")
    with pytest.raises(InvalidRouteTableError, match=r"r\.json: invalid JSON at line 1"):
        load_route_file(tmp_path / "r.json")
    with pytest.raises(RouteSourceError, match="cannot read route table"):
        load_route_file(tmp_path / "missing.yaml")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


def _function(client: Any, role: str, name: str, tags: dict[str, str], url_auth: str | None) -> None:
    client.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": _zip()}, Tags=tags,
    )  # fmt: skip
    if url_auth:
        client.create_function_url_config(FunctionName=name, AuthType=url_auth, InvokeMode="RESPONSE_STREAM")


@mock_aws(config={"lambda": {"use_docker": False}})
def test_discovery_by_tags_with_moto() -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = boto3.client("lambda", region_name="us-east-1")
    managed = {wire.TAG_MANAGED: "true", wire.TAG_PLUGIN_ID: "langgenius/openai"}
    _function(client, role, "openai-a", {**managed, wire.TAG_PROVIDERS: "openai"}, "AWS_IAM")
    _function(client, role, "openai-b", {**managed, wire.TAG_AUTH: "NONE"}, "NONE")
    _function(client, role, "no-url", {**managed}, None)
    _function(client, role, "unrelated", {"team": "x"}, "NONE")
    _function(client, role, "other", {wire.TAG_MANAGED: "true", wire.TAG_PLUGIN_ID: "acme/other"}, "NONE")

    table = routes_from_tags(client)
    assert table.plugin_ids == ("acme/other", "langgenius/openai")
    deps = table.routes["langgenius/openai"].deployments
    urls = {
        client.get_function_url_config(FunctionName=n)["FunctionUrl"]: n for n in ("openai-a", "openai-b")
    }
    assert {urls[d.url]: d.auth for d in deps} == {"openai-a": "iam", "openai-b": "none"}
    assert all(d.region == "us-east-1" for d in deps)
    assert [urls[d.url] for d in table.deployments_for("langgenius/openai", provider="openai")] == [
        "openai-a"
    ]

    secret_table = routes_from_tags(client, secret_env="FN_SECRET")
    none_dep = next(
        d for d in secret_table.routes["langgenius/openai"].deployments if urls[d.url] == "openai-b"
    )
    assert (none_dep.auth, none_dep.secret_env) == ("secret", "FN_SECRET")


@mock_aws(config={"lambda": {"use_docker": False}})
def test_discovery_missing_plugin_tag_names_function() -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = boto3.client("lambda", region_name="us-east-1")
    _function(client, role, "broken", {wire.TAG_MANAGED: "true"}, "NONE")
    with pytest.raises(
        InvalidRouteTableError, match="function 'broken': tag 'dify-lambda:plugin-id' is missing"
    ):
        routes_from_tags(client)


def test_import_router_is_light() -> None:
    code = (
        "import sys, dify_lambda.router, dify_lambda.router.autoinstall;"
        "heavy = sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('botocore','boto3','dify_plugin','gevent','yaml'));"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    code = "import sys, dify_lambda.router.client, dify_lambda.router.dify; print('botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
