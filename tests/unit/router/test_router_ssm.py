"""The SSM route source without I/O: a small fake SSM client, the location parser and the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dify_lambda.router as router_pkg
from dify_lambda.router.errors import InvalidRouteTableError, RouteSourceError
from dify_lambda.router.sources import RouteCache, route_loader, routes_from_ssm, ssm_parameter_name

NAME = "/dify-lambda/routes"
URL1 = "https://aaa.lambda-url.us-east-1.on.aws/"
URL2 = "https://bbb.lambda-url.eu-west-1.on.aws/"


class FakeClientError(Exception):
    """Shaped like botocore's ClientError: the code lives in ``response['Error']['Code']``."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code}}


class FakeSsm:
    """get_parameter over a dict; records every call's arguments."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.calls: list[dict[str, Any]] = []

    def get_parameter(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        name = kwargs["Name"]
        if name not in self.values:
            raise FakeClientError("ParameterNotFound")
        return {"Parameter": {"Name": name, "Type": "String", "Value": self.values[name]}}


class DeniedSsm:
    def get_parameter(self, **kwargs: Any) -> dict[str, Any]:
        raise FakeClientError("AccessDeniedException")


def table_json(*urls: str, plugin_id: str = "acme/tiny") -> str:
    return json.dumps({"version": 1, "routes": {plugin_id: {"deployments": [{"url": u} for u in urls]}}})


def test_good_json_table_and_decryption_requested() -> None:
    ssm = FakeSsm({NAME: table_json(URL1, URL2)})
    table = routes_from_ssm(ssm, NAME)
    assert table.plugin_ids == ("acme/tiny",)
    assert [(d.url, d.region) for d in table.deployments_for("acme/tiny")] == [
        (URL1, "us-east-1"),
        (URL2, "eu-west-1"),
    ]
    assert ssm.calls == [{"Name": NAME, "WithDecryption": True}]


def test_yaml_value_is_accepted() -> None:
    ssm = FakeSsm(
        {NAME: f"routes:\n  acme/tiny:\n    deployments:\n      - url: {URL2}\n        auth: none\n"}
    )
    [deployment] = routes_from_ssm(ssm, NAME).deployments_for("acme/tiny")
    assert (deployment.url, deployment.auth) == (URL2, "none")


def test_missing_parameter_names_it() -> None:
    with pytest.raises(RouteSourceError, match=r"^ssm:/nope: SSM parameter not found$"):
        routes_from_ssm(FakeSsm({}), "/nope")


def test_other_aws_failures_name_the_code_only() -> None:
    with pytest.raises(RouteSourceError, match=r"^ssm:/x: get_parameter failed: AccessDeniedException$"):
        routes_from_ssm(DeniedSsm(), "/x")


def test_bad_json_names_parameter_and_line() -> None:
    ssm = FakeSsm({NAME: '{"routes": {"acme/tiny": '})
    with pytest.raises(InvalidRouteTableError, match=r"^ssm:/dify-lambda/routes: invalid JSON at line 1"):
        routes_from_ssm(ssm, NAME)


def test_bad_yaml_names_parameter() -> None:
    ssm = FakeSsm({NAME: "routes: [unclosed"})
    with pytest.raises(InvalidRouteTableError, match=r"^ssm:/dify-lambda/routes: invalid YAML at line 1"):
        routes_from_ssm(ssm, NAME)


def test_bad_entry_names_parameter_and_path() -> None:
    ssm = FakeSsm({NAME: table_json(URL1, "ftp://nowhere")})
    with pytest.raises(InvalidRouteTableError) as info:
        routes_from_ssm(ssm, NAME)
    assert str(info.value).startswith("ssm:/dify-lambda/routes: routes['acme/tiny'].deployments[1].url: ")
    assert "nowhere" not in str(info.value).split(": ", 2)[1], "the entry path, not the value, locates it"


def test_top_level_list_is_refused() -> None:
    with pytest.raises(InvalidRouteTableError, match=r"^ssm:/l: top level must be a mapping"):
        routes_from_ssm(FakeSsm({"/l": "[1, 2]"}), "/l")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("ssm:/dify-lambda/routes", "/dify-lambda/routes"),
        ("ssm:plain-name", "plain-name"),
        ("routes.yaml", None),
        ("/etc/dify/routes.json", None),
        (Path("ssm:not-a-location"), None),  # a Path is always a file
    ],
)
def test_ssm_parameter_name(location: str | Path, expected: str | None) -> None:
    assert ssm_parameter_name(location) == expected


def test_empty_ssm_location_is_an_error() -> None:
    with pytest.raises(RouteSourceError, match="expected ssm:<parameter name>"):
        ssm_parameter_name("ssm:  ")


def test_route_loader_makes_the_client_once_and_needs_one() -> None:
    ssm = FakeSsm({NAME: table_json(URL1)})
    made: list[FakeSsm] = []

    def factory() -> FakeSsm:
        made.append(ssm)
        return ssm

    load = route_loader(f"ssm:{NAME}", ssm_client=factory)
    assert made == [], "the client is created on the first load, not before"
    assert load().plugin_ids == ("acme/tiny",)
    assert load().plugin_ids == ("acme/tiny",)
    assert len(made) == 1
    assert len(ssm.calls) == 2
    with pytest.raises(RouteSourceError, match="no SSM client"):
        route_loader(f"ssm:{NAME}")


def test_route_loader_client_failure_is_a_route_source_error() -> None:
    def factory() -> Any:
        raise LookupError("no region")

    with pytest.raises(RouteSourceError, match=r"^ssm:/r: cannot create the SSM client: LookupError$"):
        route_loader("ssm:/r", ssm_client=factory)()


def test_cache_refreshes_from_ssm_and_keeps_the_last_good_table() -> None:
    ssm = FakeSsm({NAME: table_json(URL1)})
    now = [0.0]
    cache = RouteCache(
        route_loader(f"ssm:{NAME}", ssm_client=lambda: ssm), refresh_seconds=10, clock=lambda: now[0]
    )
    assert cache.get().deployments_for("acme/tiny")[0].url == URL1
    ssm.values[NAME] = table_json(URL2)
    now[0] = 5.0
    assert cache.get().deployments_for("acme/tiny")[0].url == URL1, "not refreshed before the interval"
    now[0] = 11.0
    assert cache.get().deployments_for("acme/tiny")[0].url == URL2
    ssm.values[NAME] = "{broken"
    now[0] = 22.0
    assert cache.get().deployments_for("acme/tiny")[0].url == URL2
    assert isinstance(cache.last_error, InvalidRouteTableError)
    assert str(cache.last_error).startswith(f"ssm:{NAME}: invalid JSON")


def test_lazy_exports() -> None:
    assert router_pkg.routes_from_ssm is routes_from_ssm
    assert router_pkg.route_loader is route_loader
    assert {"routes_from_ssm", "route_loader"} <= set(router_pkg.__all__)
