"""The request-size guard and the serial batching of embedding calls (the daemon's behaviour).

Function URLs accept at most 6 MiB per request; like the daemon, the router refuses envelopes over
``max_request_bytes`` (default 5 MiB) before any network I/O, except for ``invoke_text_embedding``
and ``get_text_embedding_num_tokens``, whose ``texts`` are split into serial batches that each fit,
and whose results are merged in order.

Merged embedding usage: ``tokens``, ``total_tokens`` and ``total_price`` are summed; ``latency``
is **summed** too, since batches run one after another and the caller waited for all of them;
``unit_price``, ``price_unit`` and ``currency`` come from the first batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from dify_lambda import wire

__all__ = [
    "encoded_size",
    "merge_embeddings",
    "merge_num_tokens",
    "plan_batches",
    "too_large_message",
]


def too_large_message(
    action: str, payload_bytes: int, max_request_bytes: int, item_index: int | None = None
) -> str:
    """The daemon's message: sizes only, never contents."""
    msg = (
        f"ServerlessPayloadTooLarge: action={action} payload_bytes={payload_bytes}"
        f" max_request_bytes={max_request_bytes}"
    )
    return msg if item_index is None else f"{msg} item_index={item_index}"


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` in the compact envelope encoding (wire.encode_envelope)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class ItemTooLarge(ValueError):
    def __init__(self, index: int, size: int) -> None:
        super().__init__(f"item {index} alone makes an envelope of {size} bytes")
        self.index = index
        self.size = size


def plan_batches(base_size: int, items: Sequence[Any], max_bytes: int) -> list[tuple[int, int]]:
    """Greedy ``[start, end)`` ranges so that each envelope stays within ``max_bytes``.

    ``base_size`` is the encoded envelope with an empty list in place of ``items``; each item adds
    its encoded size plus one comma after the first. Raises :class:`ItemTooLarge` for an item that
    cannot fit even alone.
    """
    batches: list[tuple[int, int]] = []
    start, size = 0, base_size
    for index, item in enumerate(items):
        item_size = encoded_size(item)
        if base_size + item_size > max_bytes:
            raise ItemTooLarge(index, base_size + item_size)
        extra = item_size + (1 if index > start else 0)
        if size + extra > max_bytes:
            batches.append((start, index))
            start, size = index, base_size + item_size
        else:
            size += extra
    if start < len(items) or not batches:
        batches.append((start, len(items)))
    return batches


def _add_amounts(values: list[Any]) -> Any:
    """Sum numbers that may be JSON strings (Decimal on the wire); keep the first value's type."""
    if not values:
        return 0
    try:
        total = sum((Decimal(str(v)) for v in values if v is not None), Decimal(0))
    except InvalidOperation:
        return values[0]
    first = values[0]
    if isinstance(first, str):
        return str(total)
    if isinstance(first, int) and not isinstance(first, bool) and total == total.to_integral_value():
        return int(total)
    return float(total)


def merge_embeddings(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge ``TextEmbeddingResult`` payloads of serial batches (order kept, usage summed)."""
    if len(results) == 1:
        return results[0]
    merged = dict(results[0])
    merged["embeddings"] = [vec for r in results for vec in (r.get("embeddings") or [])]
    usages: list[dict[str, Any]] = [u for r in results if isinstance(u := r.get("usage"), dict)]
    if usages:
        usage = dict(usages[0])
        for key in ("tokens", "total_tokens", "total_price", "latency"):
            if key in usage:
                usage[key] = _add_amounts([u.get(key) for u in usages])
        merged["usage"] = usage
    return merged


def merge_num_tokens(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge ``{"num_tokens": [...]}`` payloads of serial batches, in order."""
    return {"num_tokens": [n for r in results for n in (r.get("num_tokens") or [])]}


MERGERS = {
    "invoke_text_embedding": merge_embeddings,
    "get_text_embedding_num_tokens": merge_num_tokens,
}
assert set(MERGERS) == wire.BATCHABLE_ACTIONS
