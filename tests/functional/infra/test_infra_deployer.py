"""The deployer against moto: create, idempotent redeploy, update, rollback, auth, S3 upload, cleanup."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from infra_helpers import SPEC, FailingLambda, SleepCounter, make_artifact, write_build_output

from dify_lambda.infra.aws import AwsClients
from dify_lambda.infra.builder import load_build_output
from dify_lambda.infra.deployer import Deployer
from dify_lambda.infra.errors import BuildOutputError, DeployError, NoPreviousVersionError
from dify_lambda.infra.models import DeployOptions
from dify_lambda.infra.naming import role_name
from dify_lambda.infra.role import BASIC_EXECUTION_POLICY
from dify_lambda.wire import (
    ALIAS_NAME,
    TAG_AUTH,
    TAG_CHECKSUM,
    TAG_MANAGED,
    TAG_PLUGIN_ID,
    TAG_PROVIDERS,
    TAG_UNIQUE_IDENTIFIER,
)


def policy_statements(aws: AwsClients, name: str) -> dict[str, dict[str, Any]]:
    policy = json.loads(aws.lambda_.get_policy(FunctionName=name, Qualifier=ALIAS_NAME)["Policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_first_deploy_creates_function_version_alias_url_and_tags(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    artifact = make_artifact(tmp_path)
    lines: list[str] = []
    result = deployer.deploy(artifact, DeployOptions(), lines.append)

    assert result.status == "created"
    assert result.function_name == "dify-acme-tiny-0-0-1"
    assert lines, "progress lines are reported"
    cfg = aws.lambda_.get_function_configuration(FunctionName=result.function_name)
    assert cfg["Runtime"] == SPEC.runtime
    assert cfg["Handler"] == SPEC.handler
    assert cfg["MemorySize"] == SPEC.memory_mb
    assert cfg["Timeout"] == SPEC.timeout
    assert cfg["Architectures"] == [SPEC.architecture]
    env = cfg["Environment"]["Variables"]
    for key in ("AWS_LAMBDA_EXEC_WRAPPER", "DIFY_LAMBDA_PLUGIN_ROOT", "INSTALL_METHOD", "PLUGIN_LOG_LEVEL"):
        assert env[key] == SPEC.environment[key]
    assert env["DIFY_LAMBDA_URL_AUTH"] == "AWS_IAM"
    assert "DIFY_LAMBDA_SECRET" not in env
    assert cfg["CodeSha256"] == artifact.code_sha256()

    tags = aws.lambda_.list_tags(Resource=result.function_arn)["Tags"]
    assert tags[TAG_MANAGED] == "true"
    assert tags[TAG_PLUGIN_ID] == "acme/tiny"
    assert tags[TAG_UNIQUE_IDENTIFIER] == artifact.unique_identifier
    assert tags[TAG_CHECKSUM] == artifact.checksum
    assert tags[TAG_PROVIDERS] == "tiny"
    assert tags[TAG_AUTH] == "AWS_IAM"

    alias = aws.lambda_.get_alias(FunctionName=result.function_name, Name=ALIAS_NAME)
    assert alias["FunctionVersion"] == result.version == "1"
    assert result.previous_version is None
    url = aws.lambda_.get_function_url_config(FunctionName=result.function_name, Qualifier=ALIAS_NAME)
    assert url["AuthType"] == "AWS_IAM"
    assert url["FunctionUrl"] == result.url

    role = role_name(result.function_name)
    assert cfg["Role"] == aws.iam.get_role(RoleName=role)["Role"]["Arn"]
    attached = aws.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [BASIC_EXECUTION_POLICY]


def test_same_checksum_twice_is_unchanged(aws: AwsClients, deployer: Deployer, tmp_path: Path) -> None:
    artifact = make_artifact(tmp_path)
    first = deployer.deploy(artifact)
    second = deployer.deploy(artifact)
    assert second.status == "unchanged"
    assert second.version == first.version
    assert second.url == first.url
    versions = aws.lambda_.list_versions_by_function(FunctionName=first.function_name)["Versions"]
    assert sorted(v["Version"] for v in versions) == ["$LATEST", "1"]


def test_new_checksum_updates_and_rollback_returns_to_previous(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    first = deployer.deploy(make_artifact(tmp_path / "a"))
    second_artifact = make_artifact(tmp_path / "b", checksum="cd" * 32, content=b"print('v2')\n")
    second = deployer.deploy(second_artifact)
    assert second.status == "updated"
    assert second.function_name == first.function_name
    assert (second.previous_version, second.version) == ("1", "2")
    cfg = aws.lambda_.get_function_configuration(FunctionName=second.function_name)
    assert cfg["CodeSha256"] == second_artifact.code_sha256()
    tags = aws.lambda_.list_tags(Resource=second.function_arn)["Tags"]
    assert tags[TAG_CHECKSUM] == "cd" * 32

    back = deployer.rollback(second.function_name)
    assert (back.from_version, back.to_version) == ("2", "1")
    assert aws.lambda_.get_alias(FunctionName=second.function_name, Name=ALIAS_NAME)["FunctionVersion"] == "1"
    with pytest.raises(NoPreviousVersionError, match="no older published version"):
        deployer.rollback(second.function_name)


def test_rollback_of_unknown_function_names_it(deployer: Deployer) -> None:
    with pytest.raises(DeployError, match="dify-nope"):
        deployer.rollback("dify-nope")


def test_none_auth_has_public_pair_and_keeps_secret_across_redeploys(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    first = deployer.deploy(make_artifact(tmp_path / "a"), DeployOptions(url_auth="NONE"))
    statements = policy_statements(aws, first.function_name)
    url_stmt = statements["dify-lambda-url-public"]
    invoke_stmt = statements["dify-lambda-invoke-public"]
    assert url_stmt["Action"] == "lambda:InvokeFunctionUrl"
    assert url_stmt["Principal"] == "*"
    assert url_stmt["FunctionUrlAuthType"] == "NONE"
    assert invoke_stmt["Action"] == "lambda:InvokeFunction"
    assert invoke_stmt["InvokedViaFunctionUrl"] is True
    env = aws.lambda_.get_function_configuration(FunctionName=first.function_name)["Environment"]["Variables"]
    assert env["DIFY_LAMBDA_URL_AUTH"] == "NONE"
    assert first.secret and env["DIFY_LAMBDA_SECRET"] == first.secret
    assert len(first.secret) >= 40
    assert first.endpoint == f"{first.url.rstrip('/')}/{first.secret}"

    second = deployer.deploy(
        make_artifact(tmp_path / "b", checksum="ef" * 32, content=b"v2"), DeployOptions(url_auth="NONE")
    )
    assert second.status == "updated"
    assert second.secret == first.secret

    rotated = deployer.deploy(
        make_artifact(tmp_path / "c", checksum="12" * 32, content=b"v3"),
        DeployOptions(url_auth="NONE", rotate_secret=True),
    )
    assert rotated.secret and rotated.secret != first.secret


def test_switching_to_iam_removes_public_access_and_grants_principal(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    artifact = make_artifact(tmp_path)
    deployer.deploy(artifact, DeployOptions(url_auth="NONE"))
    caller = "arn:aws:iam::123456789012:role/dify-router"
    result = deployer.deploy(artifact, DeployOptions(url_auth="AWS_IAM", principals=(caller,)))
    assert result.status == "updated"
    statements = policy_statements(aws, result.function_name)
    assert not any(s["Principal"] == "*" for s in statements.values())
    actions = sorted(s["Action"] for s in statements.values() if s["Principal"] == caller)
    assert actions == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    url_stmt = next(s for s in statements.values() if s["Action"] == "lambda:InvokeFunctionUrl")
    assert url_stmt["FunctionUrlAuthType"] == "AWS_IAM"
    cfg = aws.lambda_.get_function_configuration(FunctionName=result.function_name)
    assert "DIFY_LAMBDA_SECRET" not in cfg["Environment"]["Variables"]
    assert aws.lambda_.list_tags(Resource=result.function_arn)["Tags"][TAG_AUTH] == "AWS_IAM"
    assert aws.lambda_.get_function_url_config(FunctionName=result.function_name)["AuthType"] == "AWS_IAM"


def test_large_artifact_goes_through_s3_and_the_object_is_removed(aws: AwsClients, tmp_path: Path) -> None:
    artifact = make_artifact(tmp_path)
    deployer = Deployer(aws, sleep=SleepCounter(), direct_upload_limit=artifact.size - 1)
    lines: list[str] = []
    result = deployer.deploy(artifact, DeployOptions(), lines.append)
    assert result.status == "created"
    account = aws.sts.get_caller_identity()["Account"]
    bucket = f"dify-lambda-artifacts-{account}-{aws.region}"
    assert any(f"s3://{bucket}/" in line for line in lines)
    assert aws.s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert (
        aws.lambda_.get_function_configuration(FunctionName=result.function_name)["CodeSize"] == artifact.size
    )


def test_given_bucket_must_exist_when_creation_is_not_allowed(aws: AwsClients, tmp_path: Path) -> None:
    artifact = make_artifact(tmp_path)
    deployer = Deployer(
        aws, sleep=SleepCounter(), direct_upload_limit=1, bucket="dify-missing-bucket", create_bucket=False
    )
    with pytest.raises(DeployError, match="dify-missing-bucket does not exist"):
        deployer.deploy(artifact)
    assert aws.lambda_.list_functions()["Functions"] == []


def test_failed_first_deploy_leaves_no_function_or_role(aws: AwsClients, tmp_path: Path) -> None:
    broken = AwsClients(
        region=aws.region,
        lambda_=FailingLambda(aws.lambda_, "create_function_url_config"),
        iam=aws.iam,
        s3=aws.s3,
        ssm=aws.ssm,
        sts=aws.sts,
    )
    deployer = Deployer(broken, sleep=SleepCounter())
    with pytest.raises(DeployError, match="deploying dify-acme-tiny-0-0-1 failed"):
        deployer.deploy(make_artifact(tmp_path))
    assert aws.lambda_.list_functions()["Functions"] == []
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"] if r["RoleName"].startswith("dify-")] == []


def test_failed_update_keeps_alias_on_previous_version(aws: AwsClients, tmp_path: Path) -> None:
    first = Deployer(aws, sleep=SleepCounter()).deploy(make_artifact(tmp_path / "a"))
    broken = AwsClients(
        region=aws.region,
        lambda_=FailingLambda(aws.lambda_, "publish_version"),
        iam=aws.iam,
        s3=aws.s3,
        ssm=aws.ssm,
        sts=aws.sts,
    )
    with pytest.raises(DeployError):
        Deployer(broken, sleep=SleepCounter()).deploy(
            make_artifact(tmp_path / "b", checksum="cd" * 32, content=b"x")
        )
    assert aws.lambda_.get_alias(FunctionName=first.function_name, Name=ALIAS_NAME)["FunctionVersion"] == "1"


def test_explicit_role_is_used_and_no_role_is_created(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = aws.iam.create_role(RoleName="given", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    result = deployer.deploy(make_artifact(tmp_path), DeployOptions(role_arn=arn, create_role=False))
    assert aws.lambda_.get_function_configuration(FunctionName=result.function_name)["Role"] == arn
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"]] == ["given"]


def test_missing_role_without_permission_to_create_is_a_clear_error(
    deployer: Deployer, tmp_path: Path
) -> None:
    with pytest.raises(DeployError, match="--role-arn"):
        deployer.deploy(make_artifact(tmp_path), DeployOptions(create_role=False))


def test_list_deployed_shows_plugin_version_alias_url_and_auth(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    iam_fn = deployer.deploy(make_artifact(tmp_path / "a"))
    none_fn = deployer.deploy(
        make_artifact(tmp_path / "b", plugin_id="acme/other", version="1.2.3", checksum="cd" * 32),
        DeployOptions(url_auth="NONE"),
    )
    listed = {f.function_name: f for f in deployer.list_deployed()}
    assert set(listed) == {iam_fn.function_name, none_fn.function_name}
    other = listed[none_fn.function_name]
    assert (other.plugin_id, other.version, other.alias_version) == ("acme/other", "1.2.3", "1")
    assert (other.url, other.url_auth) == (none_fn.url, "NONE")
    assert other.endpoint == none_fn.endpoint
    assert deployer.find_by_checksum("cd" * 32) == other
    assert deployer.find_by_checksum("00" * 32) is None


def test_a_build_directory_deploys_the_function_its_report_records(
    aws: AwsClients, deployer: Deployer, tmp_path: Path
) -> None:
    spec = dataclasses.replace(
        SPEC,
        architecture="x86_64",
        memory_mb=256,
        timeout=60,
        url_auth="NONE",
        environment={**SPEC.environment, "FROM_THE_REPORT": "1"},
        function_name="dify-from-the-report",
    )
    build = write_build_output(tmp_path / "out", make_artifact(tmp_path / "zip", spec=spec))
    # A template beside the report is the SAM path's business: the deploy never reads it.
    (build / "template.yaml").write_text("Resources: {Fn: {Properties: {MemorySize: 4096}}}\n")
    artifact = load_build_output(build)
    assert artifact.spec == spec

    result = deployer.deploy(artifact)
    assert (result.function_name, result.url_auth) == ("dify-from-the-report", "NONE")
    cfg = aws.lambda_.get_function_configuration(FunctionName=result.function_name)
    assert (cfg["MemorySize"], cfg["Timeout"], cfg["Architectures"]) == (256, 60, ["x86_64"])
    env = cfg["Environment"]["Variables"]
    assert (env["FROM_THE_REPORT"], env["DIFY_LAMBDA_URL_AUTH"]) == ("1", "NONE")
    assert env["DIFY_LAMBDA_SECRET"], "the build's NONE auth gets its path secret"
    # Options given at deploy time still win over the build's.
    again = deployer.deploy(artifact, DeployOptions(url_auth="AWS_IAM", memory_mb=512))
    cfg = aws.lambda_.get_function_configuration(FunctionName=again.function_name)
    assert (again.url_auth, cfg["MemorySize"]) == ("AWS_IAM", 512)


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (None, "cannot read the build report"),
        ("{not json", "the build report is not JSON"),
        ('{"plugin_id": "acme/tiny", "runtime": "python3.12"}', "rebuild with `dify-lambda build`"),
        ('{"schema": 1, "plugin_id": "acme/tiny"}', "rebuild with `dify-lambda build`"),
        ("[2]", "rebuild with `dify-lambda build`"),
        ("function.memory_mb", "function.memory_mb: Input should be a valid integer"),
        ("function", "function: Field required"),
        ("artifact", "the artifact named by the build report does not exist"),
    ],
)
def test_a_missing_old_or_broken_report_is_refused_in_one_line(
    tmp_path: Path, report: str | None, expected: str
) -> None:
    build = write_build_output(tmp_path / "out", make_artifact(tmp_path / "zip"))
    path = build / "build-report.json"
    good = json.loads(path.read_text())
    if report is None:
        path.unlink()
    elif report == "function.memory_mb":
        path.write_text(json.dumps({**good, "function": {**good["function"], "memory_mb": "lots"}}))
    elif report in ("function", "artifact"):
        path.write_text(json.dumps({k: v for k, v in good.items() if k != report} | {"artifact": "gone.zip"}))
    else:
        path.write_text(report)
    with pytest.raises(BuildOutputError) as caught:
        load_build_output(build)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert "lots" not in message, "input values are not echoed"
