"""The function's environment under ``serve``: template resolution and sam local's override precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dify_lambda.emulator.errors import EnvVarsError
from dify_lambda.emulator.function_env import (
    TemplateFunction,
    function_environment,
    parse_env_assignments,
    template_function,
)

ROOT = Path("/srv/artifact")


def _template(variables: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Environment": {"Variables": variables}},
            },
        },
        **extra,
    }


def test_globals_are_merged_under_the_function() -> None:
    template = _template(
        {"B": "function"},
        Globals={"Function": {"Environment": {"Variables": {"A": "global", "B": "global"}}}},
    )
    fn = template_function(template, task_root=ROOT)
    assert fn is not None
    assert fn.logical_id == "Fn"
    assert fn.variables == {"A": "global", "B": "function"}


def test_refs_take_parameter_defaults_and_conditions_are_evaluated() -> None:
    template = _template(
        {
            "AUTH": {"Ref": "AuthType"},
            "REGION": {"Ref": "AWS::Region"},
            "SECRET": {"Fn::If": ["HasSecret", {"Ref": "Secret"}, {"Ref": "AWS::NoValue"}]},
            "PUBLIC": {"Fn::If": [{"Fn::Or": ["IsPublic", {"Condition": "HasSecret"}]}, "yes", "no"]},
            "NO_DEFAULT": {"Ref": "Required"},
            "ATTR": {"Fn::GetAtt": ["X", "Arn"]},
            "SUB": {"Fn::Sub": "${AWS::Region}"},
        },
        Parameters={
            "AuthType": {"Type": "String", "Default": "NONE"},
            "Secret": {"Type": "String", "Default": ""},
            "Required": {"Type": "String"},
        },
        Conditions={
            "HasSecret": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Secret"}, ""]}]},
            "IsPublic": {"Fn::And": [{"Fn::Equals": [{"Ref": "AuthType"}, "NONE"]}]},
        },
    )
    fn = template_function(template, task_root=ROOT, region="eu-west-1")
    assert fn is not None
    assert fn.variables == {"AUTH": "NONE", "REGION": "eu-west-1", "PUBLIC": "yes"}
    assert set(fn.unresolved) == {"NO_DEFAULT", "ATTR", "SUB"}


def test_a_condition_that_refers_to_itself_is_unresolved_not_a_loop() -> None:
    template = _template({"X": {"Fn::If": ["Loop", "a", "b"]}}, Conditions={"Loop": {"Condition": "Loop"}})
    fn = template_function(template, task_root=ROOT)
    assert fn is not None and fn.unresolved == ("X",)


def test_values_are_strings_and_var_task_is_the_local_root() -> None:
    fn = template_function(
        _template(
            {"N": 3, "T": True, "F": False, "ROOT": "/var/task", "P": "/var/task/plugin", "O": "/var/taskx"}
        ),
        task_root=ROOT,
    )
    assert fn is not None
    assert fn.variables == {
        "N": "3",
        "T": "true",
        "F": "false",
        "ROOT": str(ROOT),
        "P": str(ROOT / "plugin"),
        "O": "/var/taskx",
    }


def test_memory_size_from_the_function_else_globals() -> None:
    template = _template({}, Globals={"Function": {"MemorySize": 256}})
    fn = template_function(template, task_root=ROOT)
    assert fn is not None and fn.memory_mb == "256"
    template["Resources"]["Fn"]["Properties"]["MemorySize"] = {"Ref": "Memory"}
    template["Parameters"] = {"Memory": {"Type": "Number", "Default": 1024}}
    fn = template_function(template, task_root=ROOT)
    assert fn is not None and fn.memory_mb == "1024"
    fn = template_function(_template({}), task_root=ROOT)
    assert fn is not None and fn.memory_mb is None


def test_a_template_without_a_function_has_no_environment() -> None:
    assert template_function({"Resources": {"B": {"Type": "AWS::S3::Bucket"}}}, task_root=ROOT) is None
    assert template_function({}, task_root=ROOT) is None


FN = TemplateFunction("PluginFunction", "my-fn", {"A": "t", "B": "t", "C": "t"}, unresolved=("U",))


def test_precedence_template_then_parameters_then_function_block_then_env() -> None:
    file = {
        "Parameters": {"A": "params", "B": "params", "U": "params", "EXTRA": "params"},
        "PluginFunction": {"B": "block"},
        "Other": {"C": "other function"},
    }
    result = function_environment(FN, file, {"C": "env", "NEW": "env"})
    assert result.variables == {"A": "params", "B": "block", "C": "env", "U": "params", "NEW": "env"}
    assert len(result.notes) == 1 and "EXTRA" in result.notes[0]


def test_a_variable_dropped_by_no_value_may_still_be_overridden() -> None:
    template = _template(
        {"SECRET": {"Fn::If": ["Never", "x", {"Ref": "AWS::NoValue"}]}},
        Conditions={"Never": {"Fn::Equals": ["a", "b"]}},
    )
    fn = template_function(template, task_root=ROOT)
    assert fn is not None and fn.variables == {} and fn.declared == ("SECRET",)
    assert function_environment(fn, {"Parameters": {"SECRET": "local"}}).variables == {"SECRET": "local"}


def test_the_function_block_may_be_named_by_function_name() -> None:
    result = function_environment(FN, {"my-fn": {"A": "by name"}})
    assert result.variables["A"] == "by name"


def test_the_logical_id_block_wins_over_the_function_name_block() -> None:
    result = function_environment(FN, {"my-fn": {"A": "by name"}, "PluginFunction": {"A": "by id"}})
    assert result.variables["A"] == "by id"


def test_unresolved_variables_not_overridden_are_noted() -> None:
    result = function_environment(FN)
    assert result.variables == {"A": "t", "B": "t", "C": "t"}
    assert len(result.notes) == 1 and "U" in result.notes[0] and "unset" in result.notes[0]
    assert function_environment(FN, env={"U": "x"}).notes == []


def test_without_a_template_every_file_variable_applies() -> None:
    result = function_environment(None, {"Parameters": {"A": "1"}, "PluginFunction": {"B": "2"}})
    assert result.variables == {"A": "1", "B": "2"}
    assert result.notes == []


def test_env_assignments() -> None:
    assert parse_env_assignments(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}


@pytest.mark.parametrize("item", ["NOVALUE", "=v", "1A=v", "A-B=v"])
def test_bad_env_assignments_are_refused_without_the_value(item: str) -> None:
    with pytest.raises(EnvVarsError) as err:
        parse_env_assignments(["OK=1", item])
    assert "#2" in str(err.value)
    assert item not in str(err.value)
