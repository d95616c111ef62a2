"""The SAM model -> renderer -> serializer -> overlay chain (pure)."""

from __future__ import annotations

import re

import pytest

from dify_lambda import wire
from dify_lambda.errors import BuildError
from dify_lambda.packaging.build.app import function_spec
from dify_lambda.packaging.build.options import BuildOptions, Target
from dify_lambda.packaging.sam import (
    deep_merge,
    load_template,
    render_sam,
    render_samconfig,
    stack_name,
    to_yaml,
)
from dify_lambda.packaging.spec import RUNTIME_ENVIRONMENT, FunctionSpec

CHECKSUM = "ab" * 32
PLUGIN = wire.PluginIdentity("acme", "demo", "0.0.1", CHECKSUM)


def render(**overrides) -> dict:
    """The template of a spec with ``overrides`` (``environment`` adds to the runtime contract)."""
    values = {"runtime": "python3.12", "architecture": "arm64", "memory_mb": 512, "timeout": 300, **overrides}
    values["environment"] = {**RUNTIME_ENVIRONMENT, **overrides.get("environment", {})}
    return render_sam(FunctionSpec(**values), PLUGIN, ("alpha", "beta"), "artifact.zip")


def function(template: dict) -> dict:
    return template["Resources"]["PluginFunction"]["Properties"]


def test_function_properties() -> None:
    props = function(render())
    assert props["CodeUri"] == "artifact.zip"
    assert props["Handler"] == wire.HANDLER == "dify_lambda.handlers.buffered.lambda_handler"
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert (props["MemorySize"], props["Timeout"]) == (512, 300)
    assert props["AutoPublishAlias"] == wire.ALIAS_NAME
    assert props["FunctionUrlConfig"] == {"AuthType": {"Ref": "AuthType"}, "InvokeMode": "RESPONSE_STREAM"}
    assert "SnapStart" not in props
    assert "FunctionName" not in props


def test_template_header_and_parameters() -> None:
    template = render(url_auth="NONE")
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    params = template["Parameters"]
    assert params["AuthType"]["AllowedValues"] == ["AWS_IAM", "NONE"]
    assert params["AuthType"]["Default"] == "NONE"
    assert params["InvokerPrincipal"]["Default"] == ""
    assert set(params) == {"AuthType", "InvokerPrincipal", "AllowedPrincipals", "SharedSecretArn"}


def test_environment_contract() -> None:
    env = function(render(environment={"LOG_LEVEL": "DEBUG"}))["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/var/task/dify_lambda/handlers/exec_wrapper.sh"
    assert env["DIFY_LAMBDA_PLUGIN_ROOT"] == "/var/task/plugin"
    assert env["DIFY_LAMBDA_URL_AUTH"] == {"Ref": "AuthType"}
    assert env["INSTALL_METHOD"] == "serverless"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert "TIKTOKEN_CACHE_DIR" not in env
    assert env["DIFY_LAMBDA_SECRET_ARN"]["Fn::If"][0] == "HasSharedSecret"


def test_the_build_resolves_one_spec_tiktoken_then_env_over_the_contract() -> None:
    target = Target("x86_64", "3.13", 1024, 120, "NONE")
    options = BuildOptions(extra_environment={"Z": "1", "INSTALL_METHOD": "mine"}, function_name="dify-x")
    spec = function_spec(target, options, "/var/task/tiktoken")
    assert spec == FunctionSpec(
        runtime="python3.13",
        architecture="x86_64",
        memory_mb=1024,
        timeout=120,
        url_auth="NONE",
        environment={
            **RUNTIME_ENVIRONMENT,
            "TIKTOKEN_CACHE_DIR": "/var/task/tiktoken",
            "INSTALL_METHOD": "mine",
            "Z": "1",
        },
        function_name="dify-x",
    )
    assert "TIKTOKEN_CACHE_DIR" not in function_spec(target, BuildOptions()).environment
    env = function(render_sam(spec, PLUGIN, (), "a.zip"))["Environment"]["Variables"]
    assert {k: v for k, v in env.items() if isinstance(v, str)} == spec.environment


def test_tags_identify_the_plugin() -> None:
    tags = function(render())["Tags"]
    assert tags[wire.TAG_MANAGED] == "true"
    assert tags[wire.TAG_PLUGIN_ID] == "acme/demo"
    assert tags[wire.TAG_UNIQUE_IDENTIFIER] == f"acme/demo:0.0.1@{CHECKSUM}"
    assert tags[wire.TAG_CHECKSUM] == CHECKSUM
    assert tags[wire.TAG_PROVIDERS] == "alpha beta"
    assert tags[wire.TAG_AUTH] == {"Ref": "AuthType"}


def test_outputs() -> None:
    outputs = render()["Outputs"]
    assert outputs[wire.OUTPUT_FUNCTION_URL]["Value"] == {"Fn::GetAtt": ["PluginFunctionUrl", "FunctionUrl"]}
    assert outputs[wire.OUTPUT_FUNCTION_NAME]["Value"] == {"Ref": "PluginFunction"}
    assert outputs[wire.OUTPUT_FUNCTION_ARN]["Value"] == {"Ref": "PluginFunction.Alias"}
    assert outputs[wire.OUTPUT_PLUGIN_ID]["Value"] == "acme/demo"
    assert outputs[wire.OUTPUT_PROVIDERS]["Value"] == "alpha beta"
    assert outputs[wire.OUTPUT_UNIQUE_IDENTIFIER]["Value"] == f"acme/demo:0.0.1@{CHECKSUM}"


def test_invoker_permissions_on_the_alias() -> None:
    resources = render()["Resources"]
    url = resources["InvokerUrlPermission"]
    invoke = resources["InvokerInvokePermission"]
    for perm in (url, invoke):
        assert perm["Condition"] == "HasInvokerPrincipal"
        assert perm["Properties"]["FunctionName"] == {"Ref": "PluginFunction.Alias"}
        assert perm["Properties"]["Principal"] == {"Ref": "InvokerPrincipal"}
    assert url["Properties"]["Action"] == "lambda:InvokeFunctionUrl"
    assert url["Properties"]["FunctionUrlAuthType"] == "AWS_IAM"
    assert invoke["Properties"]["Action"] == "lambda:InvokeFunction"


def test_public_permissions_only_for_none() -> None:
    template = render()
    assert template["Conditions"]["IsPublicUrl"] == {"Fn::Equals": [{"Ref": "AuthType"}, "NONE"]}
    public = template["Resources"]["PublicInvokePermission"]["Properties"]
    assert public["InvokedViaFunctionUrl"] is True
    assert template["Resources"]["PublicUrlPermission"]["Properties"]["FunctionUrlAuthType"] == "NONE"


def test_secret_rule_dropped_when_another_secret_source_is_set() -> None:
    assert "Rules" in render()
    assert "Rules" not in render(environment={"DIFY_LAMBDA_SECRET_PARAMETER": "/x"})


def test_snapstart_and_function_name() -> None:
    props = function(render(snapstart=True, function_name="dify-acme-demo"))
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert props["FunctionName"] == "dify-acme-demo"


def test_yaml_round_trips_and_is_stable() -> None:
    template = render()
    text = to_yaml(template)
    assert text == to_yaml(render())
    assert load_template(text) == template
    assert "&id" not in text and "*id" not in text
    assert list(load_template(text)) == list(template)


def test_short_form_intrinsics_in_overlays() -> None:
    loaded = load_template("A: !Ref X\nB: !GetAtt Fn.Arn\nC: !Sub 'a-${X}'\nD: !If [c, 1, 2]\n")
    assert loaded == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Fn", "Arn"]},
        "C": {"Fn::Sub": "a-${X}"},
        "D": {"Fn::If": ["c", 1, 2]},
    }


@pytest.mark.parametrize("text", ["- a\n- b\n", "a: [\n"])
def test_bad_overlay_text(text: str) -> None:
    with pytest.raises(BuildError, match=r"overlay\.yaml"):
        load_template(text, "overlay.yaml")


def test_deep_merge_semantics() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 1}
    overlay = {"a": {"c": [3], "d": {"g": 2}, "b": None}, "h": "x"}
    merged = deep_merge(base, overlay)
    assert merged == {"a": {"c": [3], "d": {"e": 1, "g": 2}}, "f": 1, "h": "x"}
    assert base == {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 1}


def test_overlay_on_a_rendered_template() -> None:
    template = render()
    merged = deep_merge(
        template,
        {"Resources": {"PluginFunction": {"Properties": {"MemorySize": 2048, "Layers": ["arn:x"]}}}},
    )
    props = function(merged)
    assert props["MemorySize"] == 2048
    assert props["Layers"] == ["arn:x"]
    assert props["Runtime"] == "python3.12"


@pytest.mark.parametrize("plugin_id", ["langgenius/openai", "a_b/c.d", "9x/y", "x" * 200 + "/y"])
def test_stack_names_are_valid(plugin_id: str) -> None:
    name = stack_name(plugin_id)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", name)
    assert not name.endswith("-")


def test_samconfig_contents() -> None:
    text = render_samconfig("dify-acme-demo")
    assert 'stack_name = "dify-acme-demo"' in text
    assert 'capabilities = "CAPABILITY_IAM"' in text
    assert "resolve_s3 = true" in text
    assert "region =" not in text.replace('`region = "..."`', "")
    assert "aws_access_key_id" not in text
