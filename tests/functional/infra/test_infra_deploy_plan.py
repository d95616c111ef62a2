"""Plan-then-apply against moto: roll forward after a rollback, no half-made resources, rm, --keep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from infra_helpers import SleepCounter, make_artifact, with_failure

from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.deployer import Deployer
from dify_lambda.infra.errors import DeployError
from dify_lambda.infra.models import DeployOptions
from dify_lambda.infra.naming import role_name
from dify_lambda.infra.role import BASIC_EXECUTION_POLICY
from dify_lambda.wire import ALIAS_NAME, TAG_MANAGED

CALLER = "arn:aws:iam::123456789012:role/dify-router"


def live(aws: AwsClients, name: str) -> str:
    return str(aws.lambda_.get_alias(FunctionName=name, Name=ALIAS_NAME)["FunctionVersion"])


def dify_roles(aws: AwsClients) -> list[str]:
    return [r["RoleName"] for r in aws.iam.list_roles()["Roles"] if r["RoleName"].startswith("dify-")]


def test_deploying_the_newer_settings_after_rollback_moves_live_forward(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    deployer.deploy(make_artifact(tmp_path / "a"))
    newer = make_artifact(tmp_path / "b", checksum="cd" * 32, content=b"print('v2')\n")
    second = deployer.deploy(newer)
    deployer.rollback(second.function_name)
    assert live(aws, second.function_name) == "1"
    described = deployer.describe(second.function_name)
    assert described is not None
    assert described.checksum == "ab" * 32, "after a rollback the identity tags name what live serves"

    plan, _ = deployer.plan(newer)
    assert plan.describe() == ["update the plugin identity tags", "move alias live 1 -> 2"]
    again = deployer.deploy(newer)
    assert again.status == "updated"
    assert (again.previous_version, again.version) == ("1", "2")
    assert live(aws, again.function_name) == "2"
    versions = aws.lambda_.list_versions_by_function(FunctionName=again.function_name)["Versions"]
    assert sorted(v["Version"] for v in versions) == ["$LATEST", "1", "2"], "no extra version published"
    assert deployer.describe(again.function_name).checksum == "cd" * 32  # type: ignore[union-attr]
    assert deployer.deploy(newer).status == "unchanged"


def test_deploying_the_older_artifact_after_an_update_reuses_its_version(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    older = make_artifact(tmp_path / "a")
    deployer.deploy(older)
    deployer.deploy(make_artifact(tmp_path / "b", checksum="cd" * 32, content=b"v2"))
    back = deployer.deploy(older)
    assert back.status == "updated"
    assert live(aws, back.function_name) == "1"


def test_dry_run_plan_changes_nothing(aws: AwsClients, deployer: Deployer, tmp_path: Path) -> None:
    plan, desired = deployer.plan(make_artifact(tmp_path), DeployOptions(principals=(CALLER,)))
    assert plan.status == "created"
    assert plan.describe()[0].startswith("create execution role")
    assert desired.name == "dify-acme-tiny-0-0-1"
    assert aws.lambda_.list_functions()["Functions"] == []
    assert dify_roles(aws) == []


def test_failed_policy_attach_removes_the_new_role(aws: AwsClients, tmp_path: Path) -> None:
    broken = Deployer(with_failure(aws, iam_fails="attach_role_policy"), sleep=SleepCounter())
    with pytest.raises(DeployError, match="could not attach the execution policy"):
        broken.deploy(make_artifact(tmp_path))
    assert dify_roles(aws) == []
    assert aws.lambda_.list_functions()["Functions"] == []

    # The next deploy starts clean and ends with a role that carries its policy.
    result = Deployer(aws, sleep=SleepCounter()).deploy(make_artifact(tmp_path))
    role = role_name(result.function_name)
    attached = aws.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [BASIC_EXECUTION_POLICY]


def test_existing_role_without_its_policy_is_repaired(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    # What an older release left behind when the attach failed: the role, tagged, without policy.
    name = role_name("dify-acme-tiny-0-0-1")
    trust = {"Version": "2012-10-17", "Statement": []}
    aws.iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": TAG_MANAGED, "Value": "true"}],
    )
    plan, _ = deployer.plan(make_artifact(tmp_path))
    assert plan.describe()[0] == f"attach the basic execution policy to role {name} (it has none)"
    deployer.deploy(make_artifact(tmp_path))
    attached = aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [BASIC_EXECUTION_POLICY]


def test_failed_permission_on_first_deploy_removes_function_url_and_role(
    aws: AwsClients, tmp_path: Path
) -> None:
    broken = Deployer(with_failure(aws, lambda_fails="add_permission"), sleep=SleepCounter())
    with pytest.raises(DeployError, match="failed"):
        broken.deploy(make_artifact(tmp_path), DeployOptions(principals=(CALLER,)))
    assert aws.lambda_.list_functions()["Functions"] == []
    assert dify_roles(aws) == []


def test_failed_repair_of_an_existing_function_removes_the_url_it_created(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    first = deployer.deploy(make_artifact(tmp_path))
    aws.lambda_.delete_function_url_config(FunctionName=first.function_name, Qualifier=ALIAS_NAME)
    broken = Deployer(with_failure(aws, lambda_fails="add_permission"), sleep=SleepCounter())
    with pytest.raises(DeployError):
        broken.deploy(make_artifact(tmp_path), DeployOptions(principals=(CALLER,)))
    with pytest.raises(aws.lambda_.exceptions.ResourceNotFoundException):
        aws.lambda_.get_function_url_config(FunctionName=first.function_name, Qualifier=ALIAS_NAME)
    assert live(aws, first.function_name) == "1", "the function itself stays, live unchanged"


def test_keep_prunes_old_versions_and_never_live(aws: AwsClients, deployer: Deployer, tmp_path: Path) -> None:
    for n in range(4):
        deployer.deploy(make_artifact(tmp_path / str(n), checksum=f"{n:02d}" * 32, content=f"v{n}".encode()))
    name = "dify-acme-tiny-0-0-1"
    aws.lambda_.update_alias(FunctionName=name, Name=ALIAS_NAME, FunctionVersion="1")  # live on the oldest
    result = deployer.deploy(
        make_artifact(tmp_path / "5", checksum="55" * 32, content=b"v5"), DeployOptions(keep=2)
    )
    assert result.version == "5"
    assert result.pruned == ("1", "2", "3")
    versions = aws.lambda_.list_versions_by_function(FunctionName=name)["Versions"]
    assert sorted(v["Version"] for v in versions) == ["$LATEST", "4", "5"]

    aws.lambda_.update_alias(FunctionName=name, Name=ALIAS_NAME, FunctionVersion="4")
    plan, _ = deployer.plan(
        make_artifact(tmp_path / "6", checksum="66" * 32, content=b"v6"), DeployOptions(keep=1)
    )
    assert plan.describe()[-1] == "delete old versions 4, 5"


def test_rm_removes_function_and_our_role(aws: AwsClients, deployer: Deployer, tmp_path: Path) -> None:
    result = deployer.deploy(make_artifact(tmp_path), DeployOptions(principals=(CALLER,)))
    removed = deployer.remove(result.function_name)
    assert removed.role_removed == role_name(result.function_name)
    assert removed.plugin_id == "acme/tiny"
    assert removed.url == result.url
    assert aws.lambda_.list_functions()["Functions"] == []
    assert dify_roles(aws) == []
    with pytest.raises(DeployError, match="does not exist"):
        deployer.remove(result.function_name)


def test_rm_keeps_a_role_given_by_the_user(aws: AwsClients, deployer: Deployer, tmp_path: Path) -> None:
    trust = {"Version": "2012-10-17", "Statement": []}
    arn = aws.iam.create_role(RoleName="given", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    result = deployer.deploy(make_artifact(tmp_path), DeployOptions(role_arn=arn, create_role=False))
    assert deployer.remove(result.function_name).role_removed is None
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"]] == ["given"]


def test_rm_refuses_a_function_dify_lambda_does_not_manage(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    trust = {"Version": "2012-10-17", "Statement": []}
    arn = aws.iam.create_role(RoleName="other", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    artifact = make_artifact(tmp_path)
    aws.lambda_.create_function(
        FunctionName="dify-not-ours",
        Role=arn,
        Runtime="python3.12",
        Handler="x.h",
        Code={"ZipFile": artifact.path.read_bytes()},
    )
    with pytest.raises(DeployError, match="not managed by dify-lambda"):
        deployer.remove("dify-not-ours")
    assert [f["FunctionName"] for f in aws.lambda_.list_functions()["Functions"]] == ["dify-not-ours"]


def test_explicit_role_needs_no_iam_read_permission(aws: AwsClients, tmp_path: Path) -> None:
    trust = {"Version": "2012-10-17", "Statement": []}
    arn = aws.iam.create_role(RoleName="given", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    no_iam = Deployer(with_failure(aws, iam_fails="get_role"), sleep=SleepCounter())
    options = DeployOptions(role_arn=arn, create_role=False)
    result = no_iam.deploy(make_artifact(tmp_path), options)
    assert result.status == "created"
    assert no_iam.remove(result.function_name).role_removed is None
