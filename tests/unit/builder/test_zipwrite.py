"""The pre-deflated zip writer gives zipfile's bytes exactly (in memory, no files)."""

from __future__ import annotations

import io
import zipfile

import pytest

from dify_lambda.packaging.build.artifact import FIXED_DATE_TIME
from dify_lambda.packaging.build.zipwrite import ZipLayoutError, deflate, write_deflated

ENTRIES = [
    ("a/__init__.py", b"", 0o100644),
    ("a/mod.py", b"print('hello')\n" * 200, 0o100644),
    ("bin/run.sh", b"#!/bin/sh\nexec true\n", 0o100755),
    ("caf\u00e9/na\u00efve.txt", "d\u00e9j\u00e0 vu".encode(), 0o100644),
    ("data/blob.bin", bytes(range(256)) * 300, 0o100644),
]


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize("level", [1, 6, 9])
def test_same_bytes_as_zipfile(level: int) -> None:
    expected = io.BytesIO()
    with zipfile.ZipFile(expected, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data, mode in ENTRIES:
            zf.writestr(_info(name, mode), data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    ours = io.BytesIO()
    write_deflated(ours, [(_info(n, m), lambda d=d: deflate(d, level)) for n, d, m in ENTRIES])
    assert ours.getvalue() == expected.getvalue()
    with zipfile.ZipFile(io.BytesIO(ours.getvalue())) as zf:
        assert zf.testzip() is None
        assert [zf.read(n) for n, _, _ in ENTRIES] == [d for _, d, _ in ENTRIES]


def test_empty_archive_matches_zipfile() -> None:
    expected = io.BytesIO()
    with zipfile.ZipFile(expected, "w"):
        pass
    ours = io.BytesIO()
    write_deflated(ours, [])
    assert ours.getvalue() == expected.getvalue()


def test_zip64_sizes_are_left_to_zipfile() -> None:
    entries = [(_info(f"f{i}", 0o100644), lambda: deflate(b"", 6)) for i in range(0xFFFF)]
    with pytest.raises(ZipLayoutError):
        write_deflated(io.BytesIO(), entries)
