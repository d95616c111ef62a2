"""Deferred third-party imports under ``DIFY_LAMBDA_SDK_IMPORT=lazy`` (sdk_import.LAZY_MODULES).

A deferred package must behave like an eagerly imported one from the first attribute access on:
its ``__init__`` runs once (also when a submodule is imported first, and when several threads
touch it at once), and a failing ``__init__`` leaves ``sys.modules`` as a failed import does.
Each case runs in a fresh interpreter, since it rewires ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import catalog
from support.handler_proc import PYTHON, ROOT

from dify_lambda.handlers.sdk_import import LAZY_MODULES, MODE_ENV


def run_probe(
    code: str, path: Path | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> dict[str, Any]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("DIFY_LAMBDA_")}
    child["PYTHONDONTWRITEBYTECODE"] = "1"
    if path is not None:
        child["PYTHONPATH"] = str(path)
    child.update(env or {})
    proc = subprocess.run(
        [str(PYTHON), "-c", textwrap.dedent(code), *args],
        env=child,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def make_package(root: Path, init: str) -> None:
    """``deferpkg`` whose ``__init__`` appends to ``tracer.RUNS`` (a plain module) when it runs."""
    (root / "tracer.py").write_text("RUNS = []\n", encoding="utf-8")
    package = root / "deferpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import tracer\ntracer.RUNS.append('init')\n" + textwrap.dedent(init), encoding="utf-8"
    )
    (package / "sub.py").write_text("import tracer\ntracer.RUNS.append('sub')\nVALUE = 2\n", encoding="utf-8")


def test_the_handler_leaves_the_lazy_modules_unrun_in_lazy_mode_only() -> None:
    assert {"requests", "h11"} <= set(LAZY_MODULES)
    code = """
        import json, sys
        from pathlib import Path
        from dify_lambda.handlers.plugin import SdkPluginRuntime
        SdkPluginRuntime.load(Path(sys.argv[-1]))
        module = sys.modules["requests"]
        before = {"kind": type(module).__name__, "urllib3": "urllib3" in sys.modules}
        before["h11"] = type(sys.modules["h11"]).__name__
        # A submodule first (as ``from requests.adapters import HTTPAdapter`` in a plugin): the
        # package's __init__ runs first and the submodule exists once.
        from requests.adapters import HTTPAdapter
        after = {"post": module.post.__module__, "urllib3_after": "urllib3" in sys.modules}
        after["one_adapter"] = HTTPAdapter is module.sessions.HTTPAdapter
        after["spec"] = module.adapters.__spec__.origin.endswith("adapters.py")
        print(json.dumps({**before, **after}))
    """
    plugin = str(catalog.PLUGINS_DIR / "mockgpt")
    lazy = run_probe(code, env={MODE_ENV: "lazy"}, args=(plugin,))
    full = run_probe(code, env={MODE_ENV: "full"}, args=(plugin,))
    loaded = {"post": "requests.api", "urllib3_after": True, "one_adapter": True, "spec": True}
    assert lazy == {"kind": "DeferredModule", "urllib3": False, "h11": "DeferredModule", **loaded}
    assert full == {"kind": "module", "urllib3": True, "h11": "module", **loaded}


def test_first_attribute_access_runs_the_init_once(tmp_path: Path) -> None:
    make_package(tmp_path, "VALUE = 1\n")
    result = run_probe(
        """
        import json, sys, tracer
        from dify_lambda.handlers.sdk_import import defer_module
        first = defer_module("deferpkg")
        again = defer_module("deferpkg")
        import deferpkg
        before = list(tracer.RUNS)
        value = deferpkg.VALUE
        print(json.dumps({"first": first, "again": again, "before": before, "value": value,
                          "runs": tracer.RUNS, "missing": hasattr(deferpkg, "nope"),
                          "same": sys.modules["deferpkg"] is deferpkg}))
        """,
        tmp_path,
    )
    assert result == {
        "first": True,
        "again": False,
        "before": [],
        "value": 1,
        "runs": ["init"],
        "missing": False,
        "same": True,
    }


@pytest.mark.parametrize("init_imports_sub", [True, False])
def test_a_submodule_import_runs_the_package_init_first_and_the_submodule_once(
    tmp_path: Path, init_imports_sub: bool
) -> None:
    # With True the __init__ imports its own submodule the relative way, as requests does.
    make_package(tmp_path, "from . import sub\nVALUE = sub.VALUE\n" if init_imports_sub else "VALUE = 2\n")
    result = run_probe(
        """
        import json, sys, tracer
        from dify_lambda.handlers.sdk_import import defer_module
        defer_module("deferpkg")
        import deferpkg.sub
        sub = sys.modules["deferpkg.sub"]
        spec = sub.__spec__.origin == sub.__file__ and sub.__spec__.name == "deferpkg.sub"
        same = deferpkg.sub is sub
        print(json.dumps({"runs": tracer.RUNS, "value": deferpkg.VALUE, "same": same, "spec": spec}))
        """,
        tmp_path,
    )
    assert result == {"runs": ["init", "sub"], "value": 2, "same": True, "spec": True}


def test_threads_racing_on_first_access_all_see_the_loaded_package(tmp_path: Path) -> None:
    # The sleep widens the window in which the other threads arrive while the __init__ runs.
    make_package(tmp_path, "import time\ntime.sleep(0.2)\nVALUE = 3\n")
    result = run_probe(
        """
        import json, threading, tracer
        from dify_lambda.handlers.sdk_import import defer_module
        defer_module("deferpkg")
        import deferpkg
        barrier = threading.Barrier(8)
        seen, errors = [], []
        def touch():
            barrier.wait()
            try:
                seen.append(deferpkg.VALUE)
            except Exception as exc:
                errors.append(type(exc).__name__)
        threads = [threading.Thread(target=touch) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(json.dumps({"seen": seen, "errors": errors, "runs": tracer.RUNS}))
        """,
        tmp_path,
    )
    assert result == {"seen": [3] * 8, "errors": [], "runs": ["init"]}


def test_a_failing_init_leaves_sys_modules_as_a_failed_import(tmp_path: Path) -> None:
    make_package(tmp_path, "raise ImportError('deferpkg needs something missing')\n")
    result = run_probe(
        """
        import json, sys
        from dify_lambda.handlers.sdk_import import defer_module
        defer_module("deferpkg")
        import deferpkg
        try:
            deferpkg.VALUE
        except ImportError as exc:
            first = str(exc)
        gone = "deferpkg" not in sys.modules
        try:
            import deferpkg
        except ImportError as exc:
            second = str(exc)
        print(json.dumps({"first": first, "gone": gone, "second": second}))
        """,
        tmp_path,
    )
    message = "deferpkg needs something missing"
    assert result == {"first": message, "gone": True, "second": message}


def test_nothing_is_deferred_that_is_imported_or_missing(tmp_path: Path) -> None:
    result = run_probe(
        """
        import json, sys
        from dify_lambda.handlers.sdk_import import defer_module
        imported, missing = defer_module("json"), defer_module("no_such_pkg_h11")
        dotted, kind = defer_module("json.decoder"), type(sys.modules["json"]).__name__
        print(json.dumps({"imported": imported, "missing": missing, "dotted": dotted, "kind": kind}))
        """,
        tmp_path,
    )
    assert result == {"imported": False, "missing": False, "dotted": False, "kind": "module"}
