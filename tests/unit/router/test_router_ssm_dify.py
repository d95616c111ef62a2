"""``DIFY_LAMBDA_ROUTES=ssm:<name>``: install_from_env reads the route table from SSM (fake client)."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from dify_lambda.router.dify import install_from_env
from dify_lambda.router.errors import RouteSourceError

NAME = "/dify-lambda/routes"
URL = "https://aaa.lambda-url.us-east-1.on.aws/"


class FakeSsm:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.names: list[str] = []

    def get_parameter(self, *, Name: str, WithDecryption: bool) -> dict[str, Any]:
        self.names.append(Name)
        if Name not in self.values:
            error = Exception("not found")
            error.response = {"Error": {"Code": "ParameterNotFound"}}  # type: ignore[attr-defined]
            raise error
        return {"Parameter": {"Name": Name, "Value": self.values[Name]}}


@pytest.fixture
def dify_base() -> Iterator[type]:
    """A stand-in for Dify's ``core.plugin.impl.base.BasePluginClient`` (only the patched method)."""

    class BasePluginClient:
        def _stream_request(self, *args: Any) -> Iterator[str]:
            yield "daemon"

    names = ["core", "core.plugin", "core.plugin.impl", "core.plugin.impl.base"]
    saved = {n: sys.modules.get(n) for n in names}
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["core.plugin.impl.base"].BasePluginClient = BasePluginClient  # type: ignore[attr-defined]
    try:
        yield BasePluginClient
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_install_from_env_reads_an_ssm_location(dify_base: type) -> None:
    ssm = FakeSsm({NAME: json.dumps({"routes": {"acme/tiny": {"deployments": [{"url": URL}]}}})})
    installation = install_from_env({"DIFY_LAMBDA_ROUTES": f"ssm:{NAME}"}, ssm_client=lambda: ssm)
    assert installation is not None
    try:
        assert installation.router.plugin_ids == ("acme/tiny",)
        assert ssm.names == [NAME]
        assert dify_base.__dict__["_stream_request"] is not installation.original
    finally:
        installation.uninstall()
    assert dify_base.__dict__["_stream_request"] is installation.original


def test_install_from_env_missing_parameter_fails_at_startup(dify_base: type) -> None:
    original = dify_base.__dict__["_stream_request"]
    with pytest.raises(RouteSourceError, match=r"^ssm:/nope: SSM parameter not found$"):
        install_from_env({"DIFY_LAMBDA_ROUTES": "ssm:/nope"}, ssm_client=lambda: FakeSsm({}))
    assert dify_base.__dict__["_stream_request"] is original, "Dify keeps using the daemon"
