"""Generated templates pass cfn-lint and the SAM translator, and the root template stays in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dify_lambda import wire
from dify_lambda.packaging.build import ARTIFACT_FILE, BuildOptions, open_package, target_for
from dify_lambda.packaging.build.app import function_spec, render_application
from dify_lambda.packaging.build.rootapp import ROOT_CODE_URI, root_application
from dify_lambda.packaging.sam import load_template, to_yaml

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = ROOT / "plugins"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
PRINCIPAL = "arn:aws:iam::123456789012:role/dify-api"


class FakeManagedPolicyLoader:
    """What the translator asks for when a template names managed policies."""

    def load(self) -> dict[str, str]:
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        }


def translate(template: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    doc = load_template(to_yaml(template))
    # What `sam package` does before the transform: code moves to S3.
    doc["Resources"]["PluginFunction"]["Properties"]["CodeUri"] = "s3://bucket/artifact.zip"
    return transform(doc, parameters or {}, FakeManagedPolicyLoader())


def render(plugin: str, **options: Any) -> dict[str, Any]:
    package = open_package(PLUGINS / plugin)
    opts = BuildOptions(**options)
    return render_application(
        package, function_spec(target_for(package, opts), opts), opts, "artifact.zip"
    ).template


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"arch": "arm64", "python": "3.13", "snapstart": True},
        {"url_auth": "NONE", "function_name": "dify-x"},
    ],
)
def test_rendered_templates_pass_cfn_lint(options: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(to_yaml(render("mocklab", **options)))
    proc = cfn_lint(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_root_template_passes_cfn_lint() -> None:
    proc = cfn_lint(ROOT / "template.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_root_template_and_samconfig_are_in_sync() -> None:
    expected = root_application(ROOT)
    assert (ROOT / "template.yaml").read_text() == expected.template_yaml, (
        "regenerate with: .venv/bin/python -m dify_lambda.packaging.build.rootapp ."
    )
    assert (ROOT / "samconfig.toml").read_text() == expected.samconfig_toml
    assert expected.template["Resources"]["PluginFunction"]["Properties"]["CodeUri"] == ROOT_CODE_URI


def test_code_uris_are_zip_files_so_sam_build_keeps_the_artifact() -> None:
    # `sam build` skips functions whose CodeUri is a .zip ("Skip building zip function") and
    # only rewrites the path; a directory CodeUri would go through its python_pip workflow instead.
    root_uri = root_application(ROOT).template["Resources"]["PluginFunction"]["Properties"]["CodeUri"]
    assert root_uri == ROOT_CODE_URI
    assert root_uri.endswith(".zip")
    assert root_uri.split("/")[-1] == ARTIFACT_FILE
    assert ARTIFACT_FILE.endswith(".zip")


def test_translator_yields_streaming_url_on_the_alias() -> None:
    out = translate(render("mockgpt"))["Resources"]
    urls = {k: v for k, v in out.items() if v["Type"] == "AWS::Lambda::Url"}
    assert list(urls) == ["PluginFunctionUrl"]
    url = urls["PluginFunctionUrl"]["Properties"]
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    assert url["TargetFunctionArn"] == {"Ref": "PluginFunctionAliaslive"}
    alias = out["PluginFunctionAliaslive"]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == wire.ALIAS_NAME
    fn = out["PluginFunction"]["Properties"]
    assert fn["Handler"] == "dify_lambda.handlers.buffered.lambda_handler"
    assert fn["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"].endswith("exec_wrapper.sh")
    tags = {t["Key"]: t["Value"] for t in fn["Tags"]}
    assert tags[wire.TAG_PLUGIN_ID] == "dify-lambda/mockgpt"


def test_translator_keeps_the_principal_permissions() -> None:
    out = translate(render("mockgpt"), {"InvokerPrincipal": PRINCIPAL})["Resources"]
    perms = {k: v for k, v in out.items() if v["Type"] == "AWS::Lambda::Permission"}
    url = perms["InvokerUrlPermission"]
    invoke = perms["InvokerInvokePermission"]
    assert url["Condition"] == invoke["Condition"] == "HasInvokerPrincipal"
    assert url["Properties"]["Action"] == "lambda:InvokeFunctionUrl"
    assert url["Properties"]["FunctionUrlAuthType"] == "AWS_IAM"
    assert invoke["Properties"]["Action"] == "lambda:InvokeFunction"
    for perm in (url, invoke):
        assert perm["Properties"]["FunctionName"] == {"Ref": "PluginFunctionAliaslive"}
        assert perm["Properties"]["Principal"] == {"Ref": "InvokerPrincipal"}
    public = perms["PublicUrlPermission"]
    assert public["Condition"] == "IsPublicUrl"
    assert public["Properties"]["Principal"] == "*"


def test_overlay_file_is_merged_last(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "Resources:\n  PluginFunction:\n    Properties:\n      MemorySize: 3008\n"
        "      Layers: [!Sub 'arn:aws:lambda:${AWS::Region}:111122223333:layer:x:1']\n"
    )
    template = render("mockgpt", template_overlay=overlay)
    props = template["Resources"]["PluginFunction"]["Properties"]
    assert props["MemorySize"] == 3008
    assert props["Layers"] == [{"Fn::Sub": "arn:aws:lambda:${AWS::Region}:111122223333:layer:x:1"}]
    assert props["Runtime"] == "python3.12"
    path = tmp_path / "template.yaml"
    path.write_text(to_yaml(template))
    assert cfn_lint(path).returncode == 0


def test_missing_overlay_is_one_clear_error(tmp_path: Path) -> None:
    from dify_lambda.errors import BuildError

    with pytest.raises(BuildError, match=r"--template-overlay .*nope\.yaml: cannot read"):
        render("mockgpt", template_overlay=tmp_path / "nope.yaml")
