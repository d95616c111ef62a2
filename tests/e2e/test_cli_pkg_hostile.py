"""Hostile package inputs through the CLI: one line on stderr, exit 2, no traceback, no side effect.

Every case gets the path of a canary file it would create if the input could write files or run
code on the build machine; the canary must not exist afterwards. Messages must not echo the
hostile value (only names, paths inside the package and line numbers).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.pkgfactory import (
    build_zip,
    dump,
    edit,
    manifest_doc,
    plugin_files,
    provider_doc,
    set_path,
    write_tree,
)

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "dify-lambda"
if not CLI.exists():
    CLI = Path(sys.executable).with_name("dify-lambda")

#: Text that must never show up in a message (the hostile payloads carry it).
SECRET = "s3cr3t-payload"


def _provider(dotted: str, value: object) -> dict[str, bytes]:
    return edit(plugin_files(), {"provider/tiny.yaml": dump(set_path(provider_doc(), dotted, value))})


def _manifest_bytes(data: bytes) -> dict[str, bytes]:
    return edit(plugin_files(), {"manifest.yaml": data})


def _utf8_flagged_bad_name(canary: Path) -> bytes:
    # A name flagged UTF-8 (bit 11) whose bytes are not UTF-8.
    data = bytearray(build_zip(edit(plugin_files(), {"_assets/xx.bin": SECRET.encode()})))
    for sig, flag_off, name_off in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        pos = data.find(sig)
        while pos != -1:
            if data[pos + name_off : pos + name_off + 13] == b"_assets/xx.bi":
                struct.pack_into(
                    "<H", data, pos + flag_off, struct.unpack_from("<H", data, pos + flag_off)[0] | 0x800
                )
                data[pos + name_off + 8 : pos + name_off + 10] = b"\xff\xfe"
            pos = data.find(sig, pos + 4)
    return bytes(data)


def _huge_declared_size(canary: Path) -> bytes:
    data = bytearray(build_zip(plugin_files()))
    pos = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, pos + 24, 0xFFFFFFFF)
    return bytes(data)


@dataclass(frozen=True)
class Hostile:
    id: str
    make: Callable[[Path], bytes]
    fragment: str


def _zip(files_of: Callable[[Path], dict[str, bytes] | list[tuple[str, bytes]]]) -> Callable[[Path], bytes]:
    return lambda canary: build_zip(files_of(canary))


PACKAGES = [
    Hostile(
        "yaml-python-tag-runs-nothing",
        _zip(
            lambda c: _manifest_bytes(f'a: !!python/object/apply:os.system ["touch {c} {SECRET}"]\n'.encode())
        ),
        "manifest.yaml: invalid YAML at line 1, column 4: could not determine a constructor",
    ),
    Hostile(
        "entry-traversal",
        _zip(lambda c: [*plugin_files().items(), ("../../../" + c.name, SECRET.encode())]),
        "path traversal",
    ),
    Hostile(
        "entry-absolute",
        _zip(lambda c: [*plugin_files().items(), (str(c), SECRET.encode())]),
        "absolute path",
    ),
    Hostile(
        "entry-symlink",
        lambda c: build_zip(
            edit(plugin_files(), {"link": str(c).encode()}),
            tweak=lambda i: setattr(i, "external_attr", 0o120777 << 16) if i.filename == "link" else None,
        ),
        "symlink entry 'link' is not allowed",
    ),
    Hostile(
        "manifest-flow-20000",
        _zip(lambda c: _manifest_bytes(b"a: " + b"[" * 20_000)),
        "manifest.yaml: invalid YAML at line 1, column 67: nested deeper than 64 levels",
    ),
    Hostile(
        "provider-json-20000",
        _zip(
            lambda c: edit(plugin_files(), {"provider/tiny.yaml": b'{"a": ' * 20_000 + b"1" + b"}" * 20_000})
        ),
        "provider/tiny.yaml: invalid YAML at line 1, column",
    ),
    Hostile(
        "manifest-block-nesting",
        _zip(lambda c: _manifest_bytes(b"".join(b" " * i + b"k:\n" for i in range(300)))),
        "manifest.yaml: invalid YAML at line 64, column 64: nested deeper than 64 levels",
    ),
    Hostile(
        "manifest-lone-surrogate",
        _zip(lambda c: _manifest_bytes(b'label: {en_US: "\\udc80' + SECRET.encode() + b'"}\n')),
        "escaped lone surrogate",
    ),
    Hostile(
        "manifest-not-utf8",
        _zip(lambda c: _manifest_bytes(b"name: " + SECRET.encode() + b"\xff\n")),
        "manifest.yaml: not UTF-8 text (byte 20)",
    ),
    Hostile(
        "provider-not-utf8",
        _zip(lambda c: edit(plugin_files(), {"provider/tiny.yaml": b"\x80" + SECRET.encode()})),
        "provider/tiny.yaml: not UTF-8 text (byte 0)",
    ),
    Hostile(
        "entry-name-not-utf8",
        _utf8_flagged_bad_name,
        "unreadable zip archive",
    ),
    Hostile(
        "model-glob-unterminated-class",
        _zip(lambda c: _provider("models.llm.predefined", [f"models/llm/[{SECRET}"])),
        "models.llm.predefined[0]: malformed pattern",
    ),
    Hostile(
        "model-glob-go-bad-class",
        _zip(lambda c: _provider("models.llm.predefined", ["models/llm/[]a]" + SECRET])),
        "models.llm.predefined[0]: malformed pattern",
    ),
    Hostile(
        "model-glob-too-long",
        _zip(lambda c: _provider("models.llm.predefined", ["*a" * 600])),
        "pattern longer than 1024 characters",
    ),
    Hostile(
        "model-glob-too-many",
        _zip(lambda c: _provider("models.llm.predefined", ["*a*a*a*a*a*a*a*a*a*a*b"] * 1000)),
        "1000 predefined-model patterns, over the limit of 256",
    ),
    Hostile(
        "model-glob-escapes-root",
        _zip(lambda c: _provider("models.llm.predefined", ["../" * 10 + "etc/*"])),
        "pattern must stay inside the plugin directory",
    ),
    Hostile("declared-4-gib", _huge_declared_size, "over the limit of 52428800 bytes"),
    Hostile(
        "runner-version-absurd",
        _zip(lambda c: _manifest_bytes(dump(set_path(manifest_doc(), "meta.runner.version", SECRET * 20)))),
        "meta.runner.version: String should have at most 128 characters",
    ),
]


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def assert_one_line_refusal(r: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("dify-lambda: error: ")
    assert fragment in lines[0]
    assert SECRET not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("case", PACKAGES, ids=[c.id for c in PACKAGES])
def test_hostile_package_is_one_line_and_exit_2(tmp_path: Path, case: Hostile) -> None:
    work = tmp_path / "work" / "a" / "b"
    work.mkdir(parents=True)
    canary = tmp_path / "work" / "CANARY"
    (work / "bad.difypkg").write_bytes(case.make(canary))
    for args in (("inspect", "bad.difypkg"), ("inspect", "--json", "bad.difypkg")):
        assert_one_line_refusal(run(*args, cwd=work), case.fragment)
    assert not canary.exists()
    assert sorted(p.name for p in work.iterdir()) == ["bad.difypkg"]


def test_hostile_but_accepted_patterns_finish_with_a_warning(tmp_path: Path) -> None:
    # Upstream accepts these (an empty range, a pattern matching nothing); 40 stars used to hang.
    patterns = ["models/llm/[z-a].yaml", "models/llm/" + "*a" * 40 + "b.yaml"]
    src = write_tree(tmp_path / "src", _provider("models.llm.predefined", patterns))
    r = run("package", src, "-o", tmp_path / "x.difypkg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "dify-lambda: warning: provider/tiny.yaml: models.llm.predefined[0]: pattern matches no file",
        "dify-lambda: warning: provider/tiny.yaml: models.llm.predefined[1]: pattern matches no file",
    ]
    r = run("inspect", tmp_path / "x.difypkg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "pattern matches no file" in r.stdout


def test_deeply_nested_json_comment_is_not_a_signature(tmp_path: Path) -> None:
    (tmp_path / "x.difypkg").write_bytes(build_zip(plugin_files(), comment=b"[" * 60_000))
    r = run("inspect", "x.difypkg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "signature      unsigned" in r.stdout


SOURCES: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "ignore-file-too-many-patterns",
        lambda src: (src / ".difyignore").write_text("x\n" * 6000),
        ".difyignore: more than 5000 patterns",
    ),
    (
        "ignore-line-too-long",
        lambda src: (src / ".difyignore").write_text("*a" * 600 + "\n"),
        ".difyignore: a pattern is longer than 1024 characters",
    ),
    (
        "file-name-not-utf8",
        lambda src: (src / os.fsdecode(b"x\xff.txt")).write_text(SECRET),
        "undecodable bytes in entry name",
    ),
    (
        "fifo-ignore-file",
        lambda src: os.mkfifo(src / ".difyignore"),
        "special file '.difyignore' is not allowed",
    ),
]


@pytest.mark.parametrize(("case_id", "setup", "fragment"), SOURCES, ids=[s[0] for s in SOURCES])
def test_hostile_source_directory_is_one_line_and_exit_2(
    tmp_path: Path, case_id: str, setup: Callable[[Path], None], fragment: str
) -> None:
    src = write_tree(tmp_path / "src", plugin_files())
    setup(src)
    r = run("package", src, "-o", tmp_path / "x.difypkg", cwd=tmp_path)
    assert_one_line_refusal(r, fragment)
    assert not (tmp_path / "x.difypkg").exists()
