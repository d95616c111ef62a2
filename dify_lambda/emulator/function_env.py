"""The function's environment under ``serve``: the template's variables, then ``--env-vars``, then ``--env``.

The rules follow ``sam local`` (docs/handler.md, "Local environment"):

- the function's ``Environment.Variables`` are merged over ``Globals.Function.Environment.Variables``
  (the function's value wins, as the SAM transform merges maps);
- ``Ref`` to a template parameter takes the parameter's ``Default``; ``Fn::If``/``Fn::Equals``/
  ``Fn::Not``/``Fn::And``/``Fn::Or`` and ``Condition`` are evaluated against those defaults, and
  ``AWS::NoValue`` drops the variable. Anything else is left unset with a note (naming the variable);
- an ``--env-vars`` file (SAM's JSON format) gives values to all functions under ``"Parameters"`` and
  to one function under its logical id (or function name); the function's block wins over
  ``"Parameters"``. As in ``sam local``, the file only overrides variables the template declares;
  other names are ignored with a note. Without a template every name in the file applies;
- ``--env KEY=VALUE`` wins over both and may add any variable.

One deliberate difference: ``sam local`` also lets a shell variable with a declared name override the
template. ``serve`` passes the whole shell environment to the function (SAM's container gets only the
declared names), so it lets the template win over the shell, and ``--env`` is the explicit override.

Values in the template that point into ``/var/task`` (``LAMBDA_TASK_ROOT`` on Lambda) are rewritten
to the local artifact root.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dify_lambda import wire
from dify_lambda.emulator.errors import EnvVarsError
from dify_lambda.packaging.sam import DEFAULT_LOGICAL_ID

__all__ = [
    "FunctionEnvironment",
    "TemplateFunction",
    "function_environment",
    "load_env_vars_file",
    "parse_env_assignments",
    "template_function",
]

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
GLOBAL_KEY = "Parameters"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _Unresolved(Exception):
    """An intrinsic this module does not evaluate (the variable is skipped)."""


class _NoValue:
    """``AWS::NoValue``: the property is removed."""


NO_VALUE = _NoValue()


@dataclass(frozen=True)
class TemplateFunction:
    """The function resource of a template: its ids and its declared environment."""

    logical_id: str
    function_name: str | None
    variables: dict[str, str]
    #: Declared names whose value could not be resolved locally (left unset unless overridden).
    unresolved: tuple[str, ...] = ()
    #: ``MemorySize`` (function, else Globals) as Lambda puts it in ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``.
    memory_mb: str | None = None
    #: Every name in the merged ``Variables`` map, also those ``AWS::NoValue`` dropped: the names an
    #: ``--env-vars`` file may override (sam local counts the map's keys).
    declared: tuple[str, ...] = ()


@dataclass
class FunctionEnvironment:
    variables: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _stringify(value: object) -> str:
    """Lambda variables are strings; booleans print as JSON does (``sam local`` does the same)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


class _Evaluator:
    """Evaluates the few intrinsics a generated template's environment uses, with parameter defaults."""

    def __init__(self, template: Mapping[str, Any], region: str) -> None:
        params = template.get("Parameters")
        self.params: dict[str, Any] = {}
        if isinstance(params, Mapping):
            for name, spec in params.items():
                if isinstance(spec, Mapping) and "Default" in spec:
                    self.params[str(name)] = spec["Default"]
        conditions = template.get("Conditions")
        self.conditions: Mapping[str, Any] = conditions if isinstance(conditions, Mapping) else {}
        self.region = region
        self._evaluating: set[str] = set()

    def value(self, node: Any) -> Any:
        if not isinstance(node, Mapping):
            if isinstance(node, list):
                raise _Unresolved
            return node
        if len(node) != 1:
            raise _Unresolved
        ((key, arg),) = node.items()
        if key == "Ref":
            return self._ref(arg)
        if key == "Fn::If":
            if not isinstance(arg, list) or len(arg) != 3:
                raise _Unresolved
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        raise _Unresolved

    def _ref(self, name: Any) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name == "AWS::Region":
            return self.region
        if isinstance(name, str) and name in self.params:
            return self.params[name]
        raise _Unresolved

    def condition(self, node: Any) -> bool:
        if isinstance(node, str):  # a condition name
            if node in self._evaluating or node not in self.conditions:
                raise _Unresolved
            self._evaluating.add(node)
            try:
                return self.condition(self.conditions[node])
            finally:
                self._evaluating.discard(node)
        if not isinstance(node, Mapping) or len(node) != 1:
            raise _Unresolved
        ((key, arg),) = node.items()
        if key == "Condition":
            return self.condition(arg)
        if not isinstance(arg, list):
            raise _Unresolved
        if key == "Fn::Equals" and len(arg) == 2:
            return bool(_stringify(self.value(arg[0])) == _stringify(self.value(arg[1])))
        if key == "Fn::Not" and len(arg) == 1:
            return not self.condition(arg[0])
        if key == "Fn::And":
            return all(self.condition(c) for c in arg)
        if key == "Fn::Or":
            return any(self.condition(c) for c in arg)
        raise _Unresolved


def _variables_of(node: Any) -> Mapping[str, Any]:
    env = node.get("Environment") if isinstance(node, Mapping) else None
    variables = env.get("Variables") if isinstance(env, Mapping) else None
    return variables if isinstance(variables, Mapping) else {}


def template_function(
    template: Mapping[str, Any], *, task_root: Path, region: str = "us-east-1"
) -> TemplateFunction | None:
    """The (first) function resource of ``template`` with its environment resolved, or None."""
    resources = template.get("Resources")
    if not isinstance(resources, Mapping):
        return None
    found = next(
        (
            (str(lid), res)
            for lid, res in resources.items()
            if isinstance(res, Mapping) and res.get("Type") in FUNCTION_TYPES
        ),
        None,
    )
    if found is None:
        return None
    logical_id, resource = found
    props = resource.get("Properties")
    props = props if isinstance(props, Mapping) else {}
    declared: dict[str, Any] = {}
    function_globals: Any = None
    if resource.get("Type") == "AWS::Serverless::Function":
        globals_ = template.get("Globals")
        function_globals = globals_.get("Function") if isinstance(globals_, Mapping) else None
        declared.update(_variables_of(function_globals))
    declared.update(_variables_of(props))
    evaluator = _Evaluator(template, region)
    memory: str | None = None
    for source in (props, function_globals):
        if isinstance(source, Mapping) and "MemorySize" in source:
            with contextlib.suppress(_Unresolved):
                memory = _stringify(evaluator.value(source["MemorySize"]))
            break
    variables: dict[str, str] = {}
    unresolved: list[str] = []
    for name, raw in declared.items():
        try:
            value = evaluator.value(raw)
        except _Unresolved:
            unresolved.append(str(name))
            continue
        if value is NO_VALUE:
            continue
        text = _stringify(value)
        if text == wire.LAMBDA_TASK_ROOT or text.startswith(wire.LAMBDA_TASK_ROOT + "/"):
            text = str(task_root) + text[len(wire.LAMBDA_TASK_ROOT) :]
        variables[str(name)] = text
    function_name = props.get("FunctionName")
    return TemplateFunction(
        logical_id=logical_id,
        function_name=function_name if isinstance(function_name, str) else None,
        variables=variables,
        unresolved=tuple(unresolved),
        memory_mb=memory or None,
        declared=tuple(str(name) for name in declared),
    )


def load_env_vars_file(path: Path) -> dict[str, dict[str, str]]:
    """Read an ``--env-vars`` file: ``{"Parameters": {...}, "<LogicalId>": {...}}``; one line when bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvVarsError(f"--env-vars {path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise EnvVarsError(f"--env-vars {path}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnvVarsError(
            f"--env-vars {path}: not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise EnvVarsError(
            f"--env-vars {path}: the top level must be an object of {GLOBAL_KEY!r} and/or logical ids "
            "to objects of variable names to values"
        )
    out: dict[str, dict[str, str]] = {}
    for key, block in doc.items():
        # sam local refuses a file whose top-level values are not objects; so does serve.
        if not isinstance(block, dict):
            raise EnvVarsError(
                f"--env-vars {path}: {key!r} must be an object of variable names to values "
                f"(use {GLOBAL_KEY!r} for all functions or the function's logical id)"
            )
        for name in block:
            if not _NAME.match(name):
                raise EnvVarsError(f"--env-vars {path}: {key!r} has a variable name that is not valid")
        out[key] = {name: _stringify(value) for name, value in block.items()}
    return out


def parse_env_assignments(items: Sequence[str]) -> dict[str, str]:
    """``--env KEY=VALUE`` (repeatable); the value is never echoed in errors."""
    out: dict[str, str] = {}
    for index, item in enumerate(items, 1):
        name, sep, value = item.partition("=")
        if not sep or not _NAME.match(name):
            raise EnvVarsError(f"--env #{index}: expected KEY=VALUE with KEY a variable name")
        out[name] = value
    return out


def function_environment(
    function: TemplateFunction | None,
    env_vars: Mapping[str, Mapping[str, str]] | None = None,
    env: Mapping[str, str] | None = None,
) -> FunctionEnvironment:
    """Merge the template's variables, the ``--env-vars`` file and ``--env`` with SAM's precedence."""
    result = FunctionEnvironment()
    overrides: dict[str, str] = {}
    if env_vars:
        overrides.update(env_vars.get(GLOBAL_KEY, {}))
        ids = [function.logical_id, function.function_name] if function is not None else [DEFAULT_LOGICAL_ID]
        # sam local: the first of logical id, function id, function name that the file names.
        block = next((env_vars[i] for i in ids if i and env_vars.get(i)), None)
        overrides.update(block or {})
    if function is not None:
        result.variables.update(function.variables)
        declared = set(function.declared) | set(function.variables) | set(function.unresolved)
        ignored = sorted(set(overrides) - declared)
        if ignored:
            result.notes.append(
                f"--env-vars: {', '.join(ignored)} not declared in the template's Environment, ignored "
                "as sam local does (declare them or pass --env NAME=VALUE)"
            )
        overrides = {k: v for k, v in overrides.items() if k in declared}
        left = [n for n in function.unresolved if n not in overrides and n not in (env or {})]
        if left:
            result.notes.append(
                f"template variables {', '.join(left)} use intrinsics serve cannot resolve locally; "
                "left unset (set them with --env or --env-vars)"
            )
    result.variables.update(overrides)
    result.variables.update(env or {})
    return result
