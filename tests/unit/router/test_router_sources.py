"""Route sources without I/O: CloudFormation outputs via a stub client, and the refresh cache."""

from __future__ import annotations

from typing import Any

import pytest

from dify_lambda import wire
from dify_lambda.router.errors import InvalidRouteTableError, RouteSourceError
from dify_lambda.router.routes import RouteTable, parse_route_table
from dify_lambda.router.sources import RouteCache, routes_from_stack_outputs

URL1 = "https://aaa.lambda-url.us-east-1.on.aws/"
URL2 = "https://bbb.lambda-url.eu-west-1.on.aws/"


class StubCloudFormation:
    """describe_stacks only, with the output names the builder's templates use."""

    def __init__(self, stacks: dict[str, dict[str, str]]) -> None:
        self.stacks = stacks
        self.calls: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        self.calls.append(StackName)
        if StackName not in self.stacks:
            raise RuntimeError("Stack with id x does not exist")
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.stacks[StackName].items()]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}


def test_stack_outputs_single_and_prefixed() -> None:
    cf = StubCloudFormation(
        {
            "openai-us": {
                wire.OUTPUT_FUNCTION_URL: URL1,
                wire.OUTPUT_PLUGIN_ID: "langgenius/openai",
                wire.OUTPUT_PROVIDERS: "openai",
            },
            "multi": {
                "OpenaiEu" + wire.OUTPUT_FUNCTION_URL: URL2,
                "OpenaiEu" + wire.OUTPUT_PLUGIN_ID: "langgenius/openai",
                "Other" + wire.OUTPUT_FUNCTION_URL: URL1,
                "Other" + wire.OUTPUT_PLUGIN_ID: "acme/other",
            },
        }
    )
    table = routes_from_stack_outputs(cf, ["openai-us", "multi"])
    assert table.plugin_ids == ("acme/other", "langgenius/openai")
    urls = [d.url for d in table.routes["langgenius/openai"].deployments]
    assert urls == [URL1, URL2]
    assert [d.url for d in table.deployments_for("langgenius/openai", provider="openai")] == [URL1]
    assert {d.region for d in table.routes["langgenius/openai"].deployments} == {"us-east-1", "eu-west-1"}


def test_stack_outputs_secret_auth_needs_env() -> None:
    cf = StubCloudFormation({"s": {wire.OUTPUT_FUNCTION_URL: URL1, wire.OUTPUT_PLUGIN_ID: "a/b"}})
    table = routes_from_stack_outputs(cf, ["s"], auth="secret", secret_env="FN_SECRET")
    dep = table.routes["a/b"].deployments[0]
    assert (dep.auth, dep.secret_env) == ("secret", "FN_SECRET")
    with pytest.raises(InvalidRouteTableError, match="exactly one of"):
        routes_from_stack_outputs(cf, ["s"], auth="secret")


def test_stack_output_errors_name_the_stack() -> None:
    cf = StubCloudFormation({"nourl": {"Foo": "x"}, "noid": {wire.OUTPUT_FUNCTION_URL: URL1}})
    with pytest.raises(InvalidRouteTableError, match="stack 'nourl': no 'FunctionUrl' output"):
        routes_from_stack_outputs(cf, ["nourl"])
    with pytest.raises(InvalidRouteTableError, match="stack 'noid': output 'PluginId' is missing"):
        routes_from_stack_outputs(cf, ["noid"])
    with pytest.raises(RouteSourceError, match="stack 'gone': describe_stacks failed"):
        routes_from_stack_outputs(cf, ["gone"])


def _table(url: str) -> RouteTable:
    return parse_route_table({"routes": {"a/b": {"deployments": [{"url": url}]}}}, source="t")


def test_cache_refreshes_after_interval_and_keeps_last_good() -> None:
    now = [0.0]
    results: list[Any] = [_table(URL1), _table(URL2), RuntimeError("boom"), _table(URL1)]
    calls = []

    def loader() -> RouteTable:
        calls.append(now[0])
        item = results.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    cache = RouteCache(loader, refresh_seconds=10, clock=lambda: now[0])
    assert cache.get().routes["a/b"].deployments[0].url == URL1
    now[0] = 5
    assert cache.get().routes["a/b"].deployments[0].url == URL1
    assert len(calls) == 1
    now[0] = 10
    assert cache.get().routes["a/b"].deployments[0].url == URL2
    now[0] = 20
    assert cache.get().routes["a/b"].deployments[0].url == URL2  # refresh failed: keep the last good one
    assert isinstance(cache.last_error, RuntimeError)
    now[0] = 25
    assert len(calls) == 3  # no retry before a full interval
    cache.get()
    assert len(calls) == 3
    now[0] = 30
    assert cache.get().routes["a/b"].deployments[0].url == URL1
    assert cache.last_error is None


def test_cache_first_load_failure_raises() -> None:
    def loader() -> RouteTable:
        raise InvalidRouteTableError("routes.yaml: routes: bad")

    with pytest.raises(InvalidRouteTableError, match=r"routes\.yaml"):
        RouteCache(loader).get()
