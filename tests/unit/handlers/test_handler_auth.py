from __future__ import annotations

from typing import Any

import pytest
from unit.handlers.fakes import FakeSecret

from dify_lambda.handlers.auth import Authenticator, principal_allowed
from dify_lambda.handlers.errors import ForbiddenError, UnauthorizedError
from dify_lambda.handlers.http import HttpRequest

SECRET = "Zm9v-bar_baz.123"


def request(path: str = "/invoke", headers: dict[str, str] | None = None, iam: Any = None) -> HttpRequest:
    return HttpRequest(method="POST", path=path, query="", headers=headers or {}, body=b"", iam=iam)


def test_no_secret_and_no_allow_list_accepts_everything() -> None:
    assert Authenticator().authenticate(request("/invoke")) == "/invoke"


def test_secret_in_header() -> None:
    auth = Authenticator(secret=FakeSecret(SECRET))
    assert auth.authenticate(request(headers={"x-dify-lambda-secret": SECRET})) == "/invoke"


def test_secret_as_path_prefix_is_stripped() -> None:
    auth = Authenticator(secret=FakeSecret(SECRET))
    assert auth.authenticate(request(f"/{SECRET}/invoke")) == "/invoke"
    assert auth.authenticate(request(f"/{SECRET}/health")) == "/health"
    assert auth.authenticate(request(f"/{SECRET}")) == "/"


def test_percent_encoded_path_secret() -> None:
    auth = Authenticator(secret=FakeSecret("a b"))
    assert auth.authenticate(request("/a%20b/invoke")) == "/invoke"


@pytest.mark.parametrize(
    "req",
    [
        request("/invoke"),
        request("/wrong/invoke"),
        request(f"/{SECRET}x/invoke"),
        request("/invoke", headers={"x-dify-lambda-secret": "nope"}),
        # A wrong header decides even when the path holds the right secret.
        request(f"/{SECRET}/invoke", headers={"x-dify-lambda-secret": "nope"}),
    ],
)
def test_missing_or_wrong_secret_is_401_without_echoing_it(req: HttpRequest) -> None:
    with pytest.raises(UnauthorizedError) as info:
        Authenticator(secret=FakeSecret(SECRET)).authenticate(req)
    assert info.value.status == 401
    assert SECRET not in str(info.value)
    assert "X-Dify-Lambda-Secret" in str(info.value)


def test_rotated_secret_is_read_per_request() -> None:
    secret = FakeSecret("old")
    auth = Authenticator(secret=secret)
    assert auth.authenticate(request("/old/invoke")) == "/invoke"
    secret.value = "new"
    with pytest.raises(UnauthorizedError):
        auth.authenticate(request("/old/invoke"))


USER = "arn:aws:iam::111122223333:user/router"
ROLE = "arn:aws:iam::111122223333:role/service/dify-router"
SESSION = "arn:aws:sts::111122223333:assumed-role/dify-router/i-0abc"


@pytest.mark.parametrize(
    ("caller", "allowed", "expected"),
    [
        (USER, [USER], True),
        (USER, ["arn:aws:iam::111122223333:user/other"], False),
        (SESSION, [ROLE], True),
        (SESSION, ["arn:aws:sts::111122223333:assumed-role/dify-router"], True),
        (SESSION, [SESSION], True),
        (SESSION, ["arn:aws:iam::111122223333:role/other-role"], False),
        (SESSION, ["arn:aws:iam::444455556666:role/dify-router"], False),
        (SESSION, ["arn:aws-cn:iam::111122223333:role/dify-router"], False),
        (USER, ["arn:aws:iam::111122223333:root"], True),
        (USER, ["arn:aws:iam::444455556666:root"], False),
        # A role ARN does not admit an IAM user of the same name.
        ("arn:aws:iam::111122223333:user/dify-router", [ROLE], False),
        ("not-an-arn", [ROLE], False),
    ],
)
def test_principal_rules(caller: str, allowed: list[str], expected: bool) -> None:
    assert principal_allowed(caller, allowed) is expected


def test_allow_list_is_enforced_from_the_iam_context() -> None:
    auth = Authenticator(allowed_principals=[ROLE])
    assert auth.authenticate(request(iam={"userArn": SESSION})) == "/invoke"
    with pytest.raises(ForbiddenError, match="is not in DIFY_LAMBDA_ALLOWED_PRINCIPALS") as info:
        auth.authenticate(request(iam={"userArn": USER}))
    assert info.value.status == 403


def test_allow_list_without_iam_identity_is_403() -> None:
    with pytest.raises(ForbiddenError, match=r"requestContext\.authorizer\.iam\.userArn"):
        Authenticator(allowed_principals=[ROLE]).authenticate(request())
