"""A tiny WAV writer and reader (standard library only).

MockLab's TTS writes a valid 8 kHz mono 16-bit PCM WAV: one short tone per character (pitch from
the voice and the character, silence for spaces). The text itself rides along in a private
``mltx`` RIFF chunk, which audio players skip and MockLab's speech2text reads back, so TTS → STT
round-trips exactly.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array

SAMPLE_RATE = 8000
SAMPLES_PER_CHAR = 240  # 30 ms
AMPLITUDE = 8000
TEXT_CHUNK_ID = b"mltx"


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    padding = b"\0" if len(payload) % 2 else b""
    return chunk_id + struct.pack("<I", len(payload)) + payload + padding


def _samples(text: str, base_hz: float) -> bytes:
    samples = array("h")
    for char in text:
        if char.isspace():
            samples.extend([0] * SAMPLES_PER_CHAR)
            continue
        step = 2 * math.pi * (base_hz + (ord(char) % 32) * 20) / SAMPLE_RATE
        samples.extend(int(AMPLITUDE * math.sin(step * i)) for i in range(SAMPLES_PER_CHAR))
    if sys.byteorder == "big":  # WAV samples are little-endian
        samples.byteswap()
    return samples.tobytes()


def encode(text: str, base_hz: float = 440.0) -> bytes:
    """A complete WAV file for ``text`` with the text embedded in an ``mltx`` chunk."""
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    body = b"WAVE" + _chunk(b"fmt ", fmt) + _chunk(TEXT_CHUNK_ID, text.encode("utf-8"))
    body += _chunk(b"data", _samples(text, base_hz))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def decode_text(data: bytes) -> str | None:
    """The text of an ``mltx`` chunk, or None for any other (or malformed) audio."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        start = offset + 8
        if start + size > len(data):
            return None
        if chunk_id == TEXT_CHUNK_ID:
            try:
                return data[start : start + size].decode("utf-8")
            except UnicodeDecodeError:
                return None
        offset = start + size + (size % 2)
    return None
