"""Run by the smoke init (``python -I -S -c <this source> TASK_ROOT OUT_JSON``) in the target Python.

Never imported by the builder: it runs inside an unpacked artifact, with only the artifact on
``sys.path``. Before any plugin code runs it leaves the host's network: a fresh network namespace has one
loopback interface, down, so the plugin can fetch nothing and reach no credentials endpoint
(docs/security.md#build-time-trust-model). Then it performs the streaming loop's init
(``load_application``), reads what the SDK registered (providers and their predefined models) and
writes one JSON document to OUT_JSON: ``{"ok": true, "sdk_version", "providers": [{"name",
"models"}]}``, ``{"ok": false, "error"}``, or ``{"ok": false, "sandbox": why}`` (exit 3) when this
host cannot give it a network namespace, in which case no plugin code ran.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any

task_root, out_path = sys.argv[1], sys.argv[2]
NO_SANDBOX = 3


def _write(doc: dict[str, Any]) -> None:
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)


def _providers() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    registrations = [o for o in gc.get_objects() if type(o).__name__ == "PluginRegistration"]
    for registration in registrations[:1]:
        for name, entry in getattr(registration, "models_mapping", {}).items():
            config, factory = entry[0], entry[2]
            models: list[str] = []
            for model_type in getattr(config, "supported_model_types", ()):
                try:
                    instance = factory.get_instance(model_type)
                    schemas = instance.predefined_models()
                except Exception:  # noqa: S112 - a type without a model class: nothing predefined to list
                    continue
                kind = getattr(model_type, "value", str(model_type))
                models.extend(f"{kind}/{schema.model}" for schema in schemas)
            found.append({"name": str(name), "models": sorted(models)})
    return found


def _leave_network() -> str:
    """'' once this process is in a network namespace of its own, else why it could not be."""
    unshare = getattr(os, "unshare", None)  # Python 3.12+, Linux
    if unshare is None:
        return "this Python cannot unshare"
    # Root may make a network namespace directly; anyone else needs a user namespace around it.
    flags = os.CLONE_NEWNET if os.geteuid() == 0 else os.CLONE_NEWUSER | os.CLONE_NEWNET
    try:
        unshare(flags)
    except OSError as exc:
        return f"unshare refused: {exc.strerror or type(exc).__name__}"
    return ""


why = _leave_network()
if why:
    _write({"ok": False, "sandbox": why})
    sys.exit(NO_SANDBOX)

# The runtime's bootstrap puts the task root first on sys.path, as ``python -m`` with cwd there does.
sys.path.insert(0, task_root)
try:
    from dify_lambda.handlers.stream import load_application

    app = load_application(os.environ)  # kept alive: the registration is read from it below
    from importlib import metadata

    _write({"ok": True, "sdk_version": metadata.version("dify_plugin"), "providers": _providers()})
except BaseException as exc:
    message = str(exc).strip().splitlines()
    _write({"ok": False, "error": f"{type(exc).__name__}: {message[-1] if message else ''}".strip()})
    sys.exit(1)
