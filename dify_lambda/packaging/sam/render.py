"""``render_sam(spec) -> dict``: the SAM template of a plugin function, as plain data (pure).

Intrinsic functions are written in their long form (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``) so
the template is plain YAML any loader reads. The function URL streams (``RESPONSE_STREAM``) and
targets the ``live`` alias (``AutoPublishAlias``). Parameters:

- ``AuthType`` (``AWS_IAM`` | ``NONE``): the URL's auth type, also passed to the handler;
- ``InvokerPrincipal``: an IAM principal ARN granted ``lambda:InvokeFunctionUrl`` (with
  ``FunctionUrlAuthType: AWS_IAM``) and ``lambda:InvokeFunction`` on the alias; empty = none;
- ``AllowedPrincipals``: comma-separated caller ARNs the handler accepts (empty = any authorized);
- ``SharedSecretArn``: Secrets Manager secret holding the shared secret for ``NONE`` URLs; the
  function gets ``DIFY_LAMBDA_SECRET_ARN`` and permission to read it. With ``AuthType=NONE`` a
  template rule requires it (unless the environment already carries another secret source).

With ``AuthType=NONE`` the template also grants the two public permissions Lambda requires since
October 2025 (``lambda:InvokeFunctionUrl`` with ``FunctionUrlAuthType: NONE`` and
``lambda:InvokeFunction`` with ``InvokedViaFunctionUrl``), because SAM adds them only for a literal
``NONE``, not for a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dify_lambda import wire
from dify_lambda.packaging.spec import INVOKE_MODE, FunctionSpec

__all__ = ["DEFAULT_LOGICAL_ID", "render_sam"]

#: The function's logical id in the template (serve finds the function by it).
DEFAULT_LOGICAL_ID = "PluginFunction"
_NO_VALUE = {"Ref": "AWS::NoValue"}
_OTHER_SECRET_SOURCES = (wire.ENV_SECRET, wire.ENV_SECRET_PARAMETER)


def _ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def _not_empty(parameter: str) -> dict[str, Any]:
    return {"Fn::Not": [{"Fn::Equals": [_ref(parameter), ""]}]}


def _parameters(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "AuthType": {
            "Type": "String",
            "AllowedValues": ["AWS_IAM", "NONE"],
            "Default": spec.url_auth,
            "Description": "Function URL auth: AWS_IAM (SigV4-signed callers) or NONE (shared secret)",
        },
        "InvokerPrincipal": {
            "Type": "String",
            "Default": "",
            "Description": "IAM principal ARN allowed to call the URL and invoke the function (optional)",
        },
        "AllowedPrincipals": {
            "Type": "String",
            "Default": "",
            "Description": "Comma-separated caller ARNs the handler accepts (empty: any authorized caller)",
        },
        "SharedSecretArn": {
            "Type": "String",
            "Default": "",
            "Description": "Secrets Manager secret holding the shared secret (required with AuthType NONE)",
        },
    }


def _environment(spec: FunctionSpec) -> dict[str, Any]:
    return {
        wire.ENV_URL_AUTH: _ref("AuthType"),
        wire.ENV_ALLOWED_PRINCIPALS: _ref("AllowedPrincipals"),
        wire.ENV_SECRET_ARN: {"Fn::If": ["HasSharedSecret", _ref("SharedSecretArn"), _NO_VALUE]},
        **spec.environment,
    }


def _function(
    spec: FunctionSpec, plugin: wire.PluginIdentity, providers: Iterable[str], code_uri: str
) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if spec.function_name:
        props["FunctionName"] = spec.function_name
    props["Description"] = f"dify-lambda: {plugin.unique_identifier}"[:256]
    props.update(
        {
            "CodeUri": code_uri,
            "Handler": spec.handler,
            "Runtime": spec.runtime,
            "Architectures": [spec.architecture],
            "MemorySize": spec.memory_mb,
            "Timeout": spec.timeout,
            "AutoPublishAlias": wire.ALIAS_NAME,
        }
    )
    if spec.snapstart:
        props["SnapStart"] = {"ApplyOn": "PublishedVersions"}
    props["Environment"] = {"Variables": _environment(spec)}
    props["Policies"] = [
        {
            "Fn::If": [
                "HasSharedSecret",
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "secretsmanager:GetSecretValue",
                            "Resource": _ref("SharedSecretArn"),
                        }
                    ]
                },
                _NO_VALUE,
            ]
        }
    ]
    props["FunctionUrlConfig"] = {"AuthType": _ref("AuthType"), "InvokeMode": INVOKE_MODE}
    props["Tags"] = {**plugin.tags(providers), wire.TAG_AUTH: _ref("AuthType")}
    return {"Type": "AWS::Serverless::Function", "Properties": props}


def _permission(action: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "Action": action,
        "FunctionName": _ref(f"{DEFAULT_LOGICAL_ID}.Alias"),
        "Principal": _ref("InvokerPrincipal"),
    }
    if action == "lambda:InvokeFunctionUrl":
        # Lambda only accepts this action with the URL auth type it applies to.
        props["FunctionUrlAuthType"] = "AWS_IAM"
    return {"Type": "AWS::Lambda::Permission", "Condition": "HasInvokerPrincipal", "Properties": props}


def _public_permission(action: str) -> dict[str, Any]:
    # SAM only emits its public permissions for a literal ``AuthType: NONE``; with the parameter
    # the template grants them itself, under the same condition.
    props: dict[str, Any] = {
        "Action": action,
        "FunctionName": _ref(f"{DEFAULT_LOGICAL_ID}.Alias"),
        "Principal": "*",
    }
    if action == "lambda:InvokeFunctionUrl":
        props["FunctionUrlAuthType"] = "NONE"
    else:
        props["InvokedViaFunctionUrl"] = True
    return {"Type": "AWS::Lambda::Permission", "Condition": "IsPublicUrl", "Properties": props}


def _outputs(plugin: wire.PluginIdentity, providers: Iterable[str]) -> dict[str, Any]:
    fn = DEFAULT_LOGICAL_ID
    return {
        wire.OUTPUT_FUNCTION_URL: {
            "Description": "Function URL (targets the live alias, streams responses)",
            "Value": {"Fn::GetAtt": [f"{fn}Url", "FunctionUrl"]},
        },
        wire.OUTPUT_FUNCTION_NAME: {"Description": "Function name", "Value": _ref(fn)},
        wire.OUTPUT_FUNCTION_ARN: {
            "Description": f"ARN of the {wire.ALIAS_NAME} alias",
            "Value": _ref(f"{fn}.Alias"),
        },
        wire.OUTPUT_PLUGIN_ID: {"Description": "Plugin id (author/name)", "Value": plugin.plugin_id},
        wire.OUTPUT_PROVIDERS: {
            "Description": "Model providers served, space separated",
            "Value": wire.join_providers(providers) or "-",
        },
        wire.OUTPUT_UNIQUE_IDENTIFIER: {
            "Description": "author/name:version@checksum",
            "Value": plugin.unique_identifier,
        },
    }


def render_sam(
    spec: FunctionSpec, plugin: wire.PluginIdentity, providers: tuple[str, ...], code_uri: str
) -> dict[str, Any]:
    """The SAM template of ``spec`` serving ``plugin`` from ``code_uri`` (relative to the template's
    directory), as a dict with keys in the order they are written."""
    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": f"dify-lambda plugin function for {plugin.plugin_id}",
        "Parameters": _parameters(spec),
        "Conditions": {
            "HasInvokerPrincipal": _not_empty("InvokerPrincipal"),
            "HasSharedSecret": _not_empty("SharedSecretArn"),
            "IsPublicUrl": {"Fn::Equals": [_ref("AuthType"), "NONE"]},
        },
    }
    if not any(k in spec.environment for k in _OTHER_SECRET_SOURCES):
        template["Rules"] = {
            "SecretRequiredForPublicUrl": {
                "RuleCondition": {"Fn::Equals": [_ref("AuthType"), "NONE"]},
                "Assertions": [
                    {
                        "Assert": _not_empty("SharedSecretArn"),
                        "AssertDescription": "AuthType NONE needs SharedSecretArn (the handler refuses "
                        "public calls without a shared secret)",
                    }
                ],
            }
        }
    template["Resources"] = {
        DEFAULT_LOGICAL_ID: _function(spec, plugin, providers, code_uri),
        "InvokerUrlPermission": _permission("lambda:InvokeFunctionUrl"),
        "InvokerInvokePermission": _permission("lambda:InvokeFunction"),
        "PublicUrlPermission": _public_permission("lambda:InvokeFunctionUrl"),
        "PublicInvokePermission": _public_permission("lambda:InvokeFunction"),
    }
    template["Outputs"] = _outputs(plugin, providers)
    return template
