"""``serve`` targets: hand-made artifacts (zip and unpacked) run through the exec wrapper; bad paths."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import httpx
import pytest
from support.stub_artifact import STUB_ENV, artifact_tree, zip_tree

from dify_lambda.emulator import ServeTargetError, serve
from dify_lambda.emulator.target import resolve_target
from dify_lambda.errors import UnsafePackageError
from dify_lambda.packaging.interpreters import find_interpreter

needs_312 = pytest.mark.skipif(find_interpreter("3.12") is None, reason="no local Python 3.12")


@needs_312
@pytest.mark.parametrize("form", ["directory", "zip", "build-dir"])
def test_artifact_runs_through_the_exec_wrapper(tmp_path: Path, form: str) -> None:
    tree = artifact_tree(tmp_path / "tree")
    if form == "directory":
        path = tree
    elif form == "zip":
        path = zip_tree(tree, tmp_path / "function.zip")
    else:
        path = tmp_path / "build"
        path.mkdir()
        zip_tree(tree, path / "artifact.zip")
        (path / "build-report.json").write_text(json.dumps({"python": "3.12"}))
    cache = tmp_path / "cache"
    with serve(path, env=STUB_ENV, cache_dir=cache) as fn, httpx.Client(timeout=60) as client:
        assert fn.plugin_id == "tester/stub"
        extracted = fn.target.root
        doc = client.get(fn.url + "/echo").json()
        assert client.get(fn.url + "/ok").content == b"hello world"
    assert doc["trace"].startswith("Root=1-")
    if form == "directory":
        assert extracted == tree
    else:
        assert extracted.parent == cache / "serve"  # the unpack cache keeps it for the next serve


def test_zip_entries_escaping_the_root_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", b"x")
    with pytest.raises(UnsafePackageError, match=r"\.\./outside\.txt"):
        resolve_target(archive, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "outside.txt").exists()


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("plugin")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc")
    with pytest.raises(UnsafePackageError, match="symbolic link"):
        resolve_target(archive, cache_dir=tmp_path / "cache")


def test_wrapper_without_exec_bit_is_refused(tmp_path: Path) -> None:
    tree = artifact_tree(tmp_path / "tree")
    (tree / "dify_lambda" / "handlers" / "exec_wrapper.sh").chmod(0o644)
    if find_interpreter("3.12") is None:
        pytest.skip("no local Python 3.12")
    with pytest.raises(ServeTargetError, match="not executable"):
        resolve_target(tree)


def test_unknown_python_is_named(tmp_path: Path) -> None:
    tree = artifact_tree(tmp_path / "tree")
    with pytest.raises(ServeTargetError, match=r"no local Python 3\.99"):
        resolve_target(tree, python="3.99")


def test_a_directory_that_is_neither_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServeTargetError, match="neither a built artifact"):
        resolve_target(tmp_path)
    with pytest.raises(ServeTargetError, match="no such file"):
        resolve_target(tmp_path / "missing")


WILD = Path(__file__).resolve().parents[2] / "support" / "wild"


@pytest.mark.parametrize(("plugin", "pinned"), [("mockgpt06", "<0.7.0,>=0.4.0"), ("uvlock09", "==0.9.0")])
def test_source_pinning_another_sdk_says_so(plugin: str, pinned: str) -> None:
    # These plugins pin releases this environment does not have: serving their source runs ours.
    from importlib import metadata

    target = resolve_target(WILD / plugin)
    assert target.kind == "source"
    note = next(n for n in target.notes if "pins dify_plugin" in n)
    assert note.startswith(f"the plugin pins dify_plugin {pinned} but this environment has ")
    assert metadata.version("dify_plugin") in note
    assert note.endswith("build it and serve the artifact to run the pinned release")


def test_source_whose_pin_this_sdk_satisfies_has_no_note(tmp_path: Path) -> None:
    import shutil
    from importlib import metadata

    plugin = tmp_path / "plugin"
    shutil.copytree(WILD / "mockgpt06", plugin)
    (plugin / "requirements.txt").write_text(f"dify_plugin=={metadata.version('dify_plugin')}\nnumpy\n")
    assert not [n for n in resolve_target(plugin).notes if "pins" in n]
    (plugin / "requirements.txt").write_text("-r /etc/passwd\n")  # unreadable pins: the build reports them
    assert not [n for n in resolve_target(plugin).notes if "pins" in n]


def test_unpack_cache_keeps_recent_entries_and_drops_idle_old_ones(tmp_path: Path) -> None:
    import os
    import time

    from dify_lambda.emulator.unpack import (
        IDLE_BEFORE_EVICTION_S,
        KEEP_ENTRIES,
        SERVE_CACHE_DIR,
        cached_unpack,
    )

    tree = artifact_tree(tmp_path / "tree")
    archive = zip_tree(tree, tmp_path / "function.zip")
    cache = tmp_path / "cache"
    parent = cache / SERVE_CACHE_DIR
    parent.mkdir(parents=True)
    now = time.time()
    # Older unpacks: 10 idle for days, 2 used a minute ago (a serve may still run on them), and an
    # unpack in progress (dot-named).
    for i in range(12):
        entry = parent / f"{i:064x}"
        (entry / "plugin").mkdir(parents=True)
        age = 60 if i < 2 else 86400 * (i + 1)
        os.utime(entry, (now - age, now - age))
    (parent / ".inprogress").mkdir()
    entry, _ = cached_unpack(archive, cache, lambda _tree: None)
    left = sorted(p.name for p in parent.iterdir())
    assert entry.name in left and ".inprogress" in left
    kept_old = [n for n in left if n not in (entry.name, ".inprogress")]
    # The newest KEEP_ENTRIES - 1 others stay beside the one in use; idle older ones are gone.
    assert kept_old == [f"{i:064x}" for i in range(KEEP_ENTRIES - 1)]
    assert IDLE_BEFORE_EVICTION_S < 86400 * 2
    # A second use of the same artifact finds it (and keeps it) without unpacking again.
    marker = entry / "kept"
    marker.write_text("x")
    again, _ = cached_unpack(archive, cache, lambda _tree: None)
    assert again == entry and marker.exists()


def test_recently_used_entries_survive_beyond_the_cap(tmp_path: Path) -> None:
    import os
    import time

    from dify_lambda.emulator.unpack import KEEP_ENTRIES, SERVE_CACHE_DIR, cached_unpack

    archive = zip_tree(artifact_tree(tmp_path / "tree"), tmp_path / "function.zip")
    parent = tmp_path / "cache" / SERVE_CACHE_DIR
    parent.mkdir(parents=True)
    now = time.time()
    for i in range(KEEP_ENTRIES + 4):
        entry = parent / f"{i:064x}"
        entry.mkdir()
        os.utime(entry, (now - 30, now - 30))  # all in use a moment ago
    cached_unpack(archive, tmp_path / "cache", lambda _tree: None)
    assert len(list(parent.iterdir())) == KEEP_ENTRIES + 5
