"""Prune rules on path lists (pure)."""

from __future__ import annotations

from dify_lambda.packaging.build.prune import filter_record, prune_candidates, references_tests_dir


def test_rules() -> None:
    dirs = [
        "bin",
        "include",
        "gevent",
        "gevent/tests",
        "gevent/tests/data",
        "gevent/testing",
        "regex/test",
        "tests",
        "pkg/__pycache__",
        "gevent-1.0.dist-info",
        "gevent-1.0.dist-info/tests",
        "yaml",
        "yaml/include",
        "zope/interface/tests",
    ]
    files = ["six.pyc", "pkg/mod.py", "gevent/tests/x.pyc", "foo-1.dist-info/RECORD", "a.dist-info/x.pyc"]
    drop_dirs, drop_files = prune_candidates(dirs, files)
    assert drop_dirs == ["bin", "gevent/tests", "include", "pkg/__pycache__", "zope/interface/tests"]
    assert drop_files == ["six.pyc"]


def test_dist_info_and_singular_test_dirs_are_kept() -> None:
    drop_dirs, _ = prune_candidates(["x-1.dist-info/tests", "numpy/testing", "regex/test"], [])
    assert drop_dirs == []


def test_references_in_code_keep_a_tests_dir() -> None:
    sources = {"pkg/__init__.py": "from pkg.tests import helpers\n", "pkg/tests/helpers.py": ""}
    assert references_tests_dir("pkg/tests", sources)


def test_relative_import_from_the_parent_package() -> None:
    assert references_tests_dir("pkg/sub/tests", {"pkg/sub/core.py": "from .tests import x\n"})
    assert references_tests_dir("pkg/sub/tests", {"pkg/sub/core.py": "from . import api, tests\n"})
    # a relative import in another package refers to its own tests, not this one
    assert not references_tests_dir("pkg/sub/tests", {"pkg/other/core.py": "from .tests import x\n"})


def test_comments_and_test_runners_do_not_count() -> None:
    sources = {
        "gevent/_semaphore.py": "x = 1  # see gevent.tests.test__semaphore\n",
        "gevent/testing/testrunner.py": "import gevent.tests\n",
        "gevent/tests/test_a.py": "import gevent.tests.helper\n",
    }
    assert not references_tests_dir("gevent/tests", sources)


RECORD = (
    "../../bin/flask,sha256=abc,230\n"
    "flask/__init__.py,sha256=def,10\n"
    "flask/tests/test_x.py,sha256=123,5\n"
    "flask-3.0.dist-info/METADATA,sha256=ghi,20\n"
    "flask-3.0.dist-info/RECORD,,\n"
)


def test_record_keeps_only_rows_of_files_still_in_the_tree() -> None:
    present = {"flask/__init__.py", "flask-3.0.dist-info/METADATA"}
    kept = filter_record(RECORD, "flask-3.0.dist-info", present.__contains__)
    assert kept == (
        "flask/__init__.py,sha256=def,10\nflask-3.0.dist-info/METADATA,sha256=ghi,20\nflask-3.0.dist-info/RECORD,,\n"
    )


def test_record_rows_outside_the_root_map_into_the_tree() -> None:
    # pip --target writes scripts as ../../bin/NAME and moves them to <target>/bin/NAME.
    asked: list[str] = []

    def exists(path: str) -> bool:
        asked.append(path)
        return True

    filter_record(RECORD, "flask-3.0.dist-info", exists)
    assert asked[0] == "bin/flask"


def test_record_unchanged_when_nothing_was_pruned() -> None:
    assert filter_record(RECORD, "flask-3.0.dist-info", lambda _p: True) == RECORD
