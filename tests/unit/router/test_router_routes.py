"""Route table parsing, validation messages and resolution."""

from __future__ import annotations

from typing import Any

import pytest

from dify_lambda.router.errors import InvalidRouteTableError, NoRouteError
from dify_lambda.router.routes import parse_route_table, region_from_url

URL_A = "https://abc123.lambda-url.us-east-1.on.aws/"
URL_B = "https://def456.lambda-url.eu-west-1.on.aws/"
URL_C = "https://ghi789.lambda-url.ap-south-1.on.aws/"
URL_D = "https://jkl000.lambda-url.us-west-2.on.aws/"


def table(routes: dict[str, Any]) -> Any:
    return parse_route_table({"routes": routes}, source="routes.yaml")


def bad(raw: Any) -> str:
    with pytest.raises(InvalidRouteTableError) as info:
        parse_route_table(raw, source="routes.yaml")
    return str(info.value)


def test_region_from_url() -> None:
    assert region_from_url(URL_A) == "us-east-1"
    assert region_from_url("http://127.0.0.1:8080/") is None


def test_defaults_and_region_derivation() -> None:
    dep = (
        table({"langgenius/openai": {"deployments": [{"url": URL_B}]}})
        .routes["langgenius/openai"]
        .deployments[0]
    )
    assert (dep.auth, dep.region, dep.weight) == ("iam", "eu-west-1", 1.0)


def test_resolution_order() -> None:
    t = table(
        {
            "langgenius/openai": {
                "deployments": [{"url": URL_A}],
                "providers": {"openai": {"deployments": [{"url": URL_B}]}},
                "models": {"openai/gpt-4o": {"deployments": [{"url": URL_C}]}},
                "tenants": {"t1": {"deployments": [{"url": URL_D}]}},
            }
        }
    )

    def url(**kw: Any) -> str:
        return t.deployments_for("langgenius/openai", **kw)[0].url

    assert url() == URL_A
    assert url(provider="openai") == URL_B
    assert url(provider="openai", model="gpt-4o") == URL_C
    assert url(provider="openai", model="gpt-4o", tenant_id="t1") == URL_D
    assert url(provider="other", model="gpt-4o") == URL_A
    assert t.plugin_ids == ("langgenius/openai",)


def test_no_route_names_known_ids() -> None:
    t = table({"a/b": {"deployments": [{"url": URL_A}]}})
    with pytest.raises(NoRouteError, match=r"'x/y'.*a/b"):
        t.deployments_for("x/y")


def test_error_names_the_entry() -> None:
    msg = bad({"routes": {"langgenius/openai": {"deployments": [{"url": URL_A}, {"url": "ftp://x"}]}}})
    assert msg.startswith("routes.yaml: routes['langgenius/openai'].deployments[1].url: ")
    assert "too_short" not in msg and "at least 1" not in msg


def test_iam_needs_region_when_url_is_not_a_function_url() -> None:
    msg = bad({"routes": {"a/b": {"deployments": [{"url": "http://127.0.0.1:9000/"}]}}})
    assert "routes['a/b'].deployments[0]: auth 'iam' needs 'region'" in msg
    ok = table({"a/b": {"deployments": [{"url": "http://127.0.0.1:9000/", "region": "us-east-1"}]}})
    assert ok.routes["a/b"].deployments[0].region == "us-east-1"


@pytest.mark.parametrize(
    ("dep", "fragment"),
    [
        ({"url": URL_A, "auth": "secret"}, "exactly one of 'secret_env' or 'secret'"),
        ({"url": URL_A, "auth": "secret", "secret": "x", "secret_env": "Y"}, "exactly one of"),
        ({"url": URL_A, "auth": "none", "secret_env": "Y"}, "only valid with auth 'secret'"),
        ({"url": URL_A, "auth": "basic"}, "deployments[0].auth:"),
        ({"url": URL_A, "weight": 0}, "deployments[0].weight:"),
        ({"url": URL_A, "extra": 1}, "deployments[0].extra: Extra inputs are not permitted"),
        ({"url": URL_A + "?x=1"}, "query string"),
    ],
)
def test_deployment_errors(dep: dict[str, Any], fragment: str) -> None:
    assert fragment in bad({"routes": {"a/b": {"deployments": [dep]}}})


def test_plugin_id_and_model_keys_checked() -> None:
    msg = bad({"routes": {"openai": {"deployments": [{"url": URL_A}]}}})
    assert msg == "routes.yaml: routes: key 'openai' is not a plugin id '<org>/<plugin>'"
    msg = bad(
        {
            "routes": {
                "a/b": {"deployments": [{"url": URL_A}], "models": {"gpt": {"deployments": [{"url": URL_A}]}}}
            }
        }
    )
    assert "routes['a/b'].models: key 'gpt' must be '<provider>/<model>'" in msg


def test_empty_deployments_and_top_level() -> None:
    assert "routes['a/b'].deployments:" in bad({"routes": {"a/b": {"deployments": []}}})
    assert "top level must be a mapping" in bad(["x"])
    assert "version" in bad({"version": 2, "routes": {}})


def test_secret_never_in_messages_or_repr() -> None:
    t = table({"a/b": {"deployments": [{"url": URL_A, "auth": "secret", "secret": "hunter2"}]}})
    assert "hunter2" not in repr(t) and "hunter2" not in str(t.model_dump())
    msg = bad(
        {"routes": {"a/b": {"deployments": [{"url": "ftp://x", "auth": "secret", "secret": "hunter2"}]}}}
    )
    assert "hunter2" not in msg
