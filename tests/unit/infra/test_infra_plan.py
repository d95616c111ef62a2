"""The deploy planner: every decision, from plain data, without AWS."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dify_lambda.infra.access import INVOKE_MODE, desired_statements
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.plan import (
    AddPermission,
    AttachRolePolicy,
    CreateFunction,
    CreateRole,
    CreateUrl,
    Desired,
    FunctionConfig,
    PointAlias,
    PruneVersions,
    PublishVersion,
    RemoteState,
    RemovePermission,
    RoleState,
    TagFunction,
    UpdateCode,
    UpdateConfiguration,
    UpdateUrl,
    UrlState,
    VersionState,
    plan,
    versions_to_prune,
)

NAME = "dify-acme-tiny-0-0-1"
ROLE = "arn:aws:iam::123456789012:role/dify-lambda-dify-acme-tiny-0-0-1"
CALLER = "arn:aws:iam::123456789012:role/router"
CONFIG = FunctionConfig(
    runtime="python3.12",
    handler="h.handler",
    memory_mb=512,
    timeout_s=300,
    architectures=("arm64",),
    environment={"DIFY_LAMBDA_URL_AUTH": "AWS_IAM"},
)
TAGS = {"dify-lambda:checksum": "bb", "dify-lambda:managed": "true"}
STATEMENTS = tuple(desired_statements("AWS_IAM", (CALLER,)))
OUR_ROLE = RoleState(name="dify-lambda-" + NAME, arn=ROLE, has_policy=True, managed=True)


def desired(**changes: object) -> Desired:
    base = Desired(
        name=NAME,
        code_sha256="code-b",
        config=CONFIG,
        tags=TAGS,
        url_auth="AWS_IAM",
        statements=STATEMENTS,
        description="acme/tiny:0.0.1@bb",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def version(number: str, code: str = "code-b", config: FunctionConfig = CONFIG) -> VersionState:
    return VersionState(version=number, code_sha256=code, config=config, role=ROLE)


def deployed(**changes: object) -> RemoteState:
    """A function whose live version 2 equals :func:`desired` in every respect."""
    base = RemoteState(
        name=NAME,
        role=OUR_ROLE,
        latest=version("$LATEST"),
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{NAME}",
        tags=TAGS,
        versions=(version("1", code="code-a"), version("2")),
        alias_version="2",
        url=UrlState(url="https://x.lambda-url.us-east-1.on.aws/", auth="AWS_IAM", invoke_mode=INVOKE_MODE),
        sids=frozenset(s.sid for s in STATEMENTS),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def kinds(p: object) -> list[type]:
    return [type(s) for s in p.steps]  # type: ignore[attr-defined]


def test_nothing_exists_creates_role_function_version_alias_url_and_permissions() -> None:
    p = plan(desired(), RemoteState(name=NAME, role=RoleState(name="dify-lambda-" + NAME)))
    assert kinds(p) == [
        CreateRole,
        CreateFunction,
        PublishVersion,
        PointAlias,
        CreateUrl,
        AddPermission,
        AddPermission,
    ]
    assert p.status == "created"
    assert p.role_arn is None
    assert p.previous_version is None


def test_no_role_and_creation_not_allowed_is_an_error() -> None:
    with pytest.raises(DeployError, match="--role-arn"):
        plan(desired(create_role=False), RemoteState(name=NAME, role=RoleState(name="r")))


def test_existing_managed_role_without_policy_is_repaired_before_reuse() -> None:
    broken = RoleState(name=OUR_ROLE.name, arn=ROLE, has_policy=False, managed=True)
    p = plan(desired(), RemoteState(name=NAME, role=broken))
    assert kinds(p)[:2] == [AttachRolePolicy, CreateFunction]
    assert p.role_arn == ROLE


def test_existing_managed_role_with_policy_is_reused() -> None:
    p = plan(desired(), RemoteState(name=NAME, role=OUR_ROLE))
    assert kinds(p)[0] is CreateFunction
    assert p.role_arn == ROLE


def test_explicit_role_is_used_as_given() -> None:
    given = "arn:aws:iam::123456789012:role/given"
    p = plan(desired(role_arn=given), RemoteState(name=NAME, role=RoleState(name="r")))
    assert kinds(p)[0] is CreateFunction
    assert p.role_arn == given


def test_changed_explicit_role_updates_the_configuration() -> None:
    given = "arn:aws:iam::123456789012:role/given"
    p = plan(desired(role_arn=given), deployed())
    assert kinds(p) == [UpdateConfiguration, PublishVersion, PointAlias]


def test_identical_state_is_unchanged() -> None:
    p = plan(desired(), deployed())
    assert p.steps == ()
    assert p.status == "unchanged"


def test_after_rollback_the_newer_settings_move_live_forward_without_publishing() -> None:
    # $LATEST and version 2 hold the desired code; live was rolled back to version 1.
    p = plan(desired(), deployed(alias_version="1"))
    assert p.steps == (PointAlias("2", create=False, previous="1"),)
    assert p.status == "updated"
    assert p.previous_version == "1"


def test_live_on_an_older_version_with_latest_changed_publishes_then_moves() -> None:
    remote = deployed(latest=version("$LATEST", code="code-a"), versions=(version("1", code="code-a"),))
    remote = replace(remote, alias_version="1")
    p = plan(desired(), remote)
    assert kinds(p) == [UpdateCode, PublishVersion, PointAlias]
    assert p.steps[-1] == PointAlias(None, create=False, previous="1")


def test_new_code_updates_code_publishes_and_moves_alias() -> None:
    p = plan(desired(code_sha256="code-c"), deployed())
    assert kinds(p) == [UpdateCode, PublishVersion, PointAlias]


def test_new_architecture_is_a_code_update() -> None:
    p = plan(desired(config=replace(CONFIG, architectures=("x86_64",))), deployed())
    assert kinds(p) == [UpdateCode, PublishVersion, PointAlias]


def test_new_settings_update_configuration_only() -> None:
    p = plan(desired(config=replace(CONFIG, memory_mb=1024)), deployed())
    assert kinds(p) == [UpdateConfiguration, PublishVersion, PointAlias]


def test_environment_change_is_a_configuration_change() -> None:
    env = {**CONFIG.environment, "EXTRA": "1"}
    p = plan(desired(config=replace(CONFIG, environment=env)), deployed())
    assert UpdateConfiguration in kinds(p)


def test_changed_tags_alone_only_retag() -> None:
    p = plan(desired(tags={**TAGS, "dify-lambda:checksum": "cc"}), deployed())
    assert kinds(p) == [TagFunction]


def test_an_older_equal_version_is_reused_instead_of_publishing() -> None:
    remote = deployed(
        latest=version("$LATEST", code="code-a"),
        versions=(version("1"), version("2", code="code-a")),
        alias_version="2",
    )
    p = plan(desired(), remote)
    assert kinds(p) == [UpdateCode, PointAlias]
    assert p.steps[-1] == PointAlias("1", create=False, previous="2")


def test_missing_alias_is_created() -> None:
    p = plan(desired(), deployed(alias_version=None, url=None, sids=frozenset()))
    assert kinds(p) == [PointAlias, CreateUrl, AddPermission, AddPermission]
    assert p.steps[0] == PointAlias("2", create=True, previous=None)


def test_url_with_other_auth_is_updated_and_permissions_replaced() -> None:
    remote = deployed(
        url=UrlState(url="u", auth="NONE", invoke_mode=INVOKE_MODE),
        sids=frozenset({"dify-lambda-url-public", "dify-lambda-invoke-public"}),
    )
    p = plan(desired(), remote)
    assert kinds(p) == [UpdateUrl, RemovePermission, RemovePermission, AddPermission, AddPermission]


def test_buffered_url_is_switched_to_streaming() -> None:
    p = plan(desired(), deployed(url=UrlState(url="u", auth="AWS_IAM", invoke_mode="BUFFERED")))
    assert kinds(p) == [UpdateUrl]


def test_keep_prunes_old_versions_but_never_live() -> None:
    remote = deployed(versions=(*(version(str(n), code=f"c{n}") for n in range(1, 6)), version("6")))
    p = plan(desired(keep=2), replace(remote, alias_version="6"))
    assert p.steps == (PruneVersions(("1", "2", "3", "4")),)
    assert p.status == "unchanged", "pruning does not change what live serves"


def test_keep_counts_the_version_about_to_be_published() -> None:
    p = plan(desired(code_sha256="code-new", keep=2), deployed())
    assert p.steps[-1] == PruneVersions(("1",))


def test_versions_to_prune_keeps_live_even_when_old() -> None:
    assert versions_to_prune(["1", "2", "3", "4"], keep=1, live="1", publishing=False) == ("2", "3")
    assert versions_to_prune(["1", "2"], keep=3, live="2", publishing=True) == ()
    assert versions_to_prune(["1", "2", "3"], keep=1, live=None, publishing=True) == ("1", "2", "3")
    with pytest.raises(DeployError, match="--keep 0"):
        versions_to_prune(["1"], keep=0, live="1", publishing=False)


def test_plan_describes_each_step_in_words() -> None:
    p = plan(desired(), deployed(alias_version="1"))
    assert p.describe() == ["move alias live 1 -> 2"]
