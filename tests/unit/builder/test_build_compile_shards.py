"""The compile plan is a function of the file list only: never of the worker count or of timing."""

from __future__ import annotations

import struct

from dify_lambda.packaging.build.compile import parse_output, plan_shards

FILES = [(f"/t/pkg/m{i:03}.py", 1000 + (i * 37) % 500) for i in range(200)]


def test_shards_are_contiguous_and_cover_every_file_once() -> None:
    shards = plan_shards(FILES, max_shards=8, min_bytes=10_000)
    assert len(shards) == 8
    assert [p for shard in shards for p in shard] == [p for p, _ in FILES]


def test_shards_balance_source_bytes() -> None:
    sizes = dict(FILES)
    totals = [sum(sizes[p] for p in shard) for shard in plan_shards(FILES, max_shards=4, min_bytes=1)]
    assert max(totals) - min(totals) < 2 * max(sizes.values())


def test_a_small_tree_is_one_shard() -> None:
    assert plan_shards(FILES[:3], max_shards=8, min_bytes=1 << 20) == [[p for p, _ in FILES[:3]]]


def test_the_plan_is_the_same_every_time() -> None:
    assert plan_shards(FILES, 8, 10_000) == plan_shards(list(FILES), 8, 10_000)


def test_empty_list_has_no_shard() -> None:
    assert plan_shards([]) == []


def _frame(name: str, data: bytes) -> bytes:
    encoded = name.encode()
    return struct.pack("<II", len(encoded), len(data)) + encoded + data


def test_shard_output_is_read_frame_by_frame() -> None:
    out = _frame("a/__pycache__/m.cpython-312.pyc", b"\x00pyc") + _frame("b/__pycache__/n.pyc", b"")
    assert parse_output(out) == [
        ("a/__pycache__/m.cpython-312.pyc", b"\x00pyc"),
        ("b/__pycache__/n.pyc", b""),
    ]


def test_a_cut_off_last_frame_is_dropped() -> None:
    whole = _frame("a.pyc", b"12345")
    assert parse_output(whole + _frame("b.pyc", b"67890")[:-2]) == [("a.pyc", b"12345")]
    assert parse_output(b"") == []
