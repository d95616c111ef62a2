"""What MockGPT says, and how it counts: pure functions, no SDK imports.

Replies are chosen from the last user message only, so the same prompt always gives the same
answer (the conformance suite compares the SDK server and the Lambda handler line by line).

Control messages (the whole last user message, case-insensitive):

- ``raise:<kind>``: fail with the error named by ``kind`` (see :data:`ERROR_KINDS`);
  ``raise:crash`` streams a few words first and then raises a plain exception.
- ``echo:<text>``: reply with ``<text>`` verbatim.
- ``words:<n>``: reply with ``n`` numbered words (``w1 w2 ...``), for long streams.
- ``tool:<name>``: answer with a call of the tool ``name`` (when such a tool was offered).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable

CANNED_REPLIES: tuple[str, ...] = (
    "Hello! I am MockGPT, a pretend model that answers without any network access.",
    "Streaming works: every word of this sentence arrives as its own chunk.",
    "The quick brown fox jumps over the lazy dog while the tests keep watching.",
    "Deterministic replies make conformance checks easy: same prompt, same answer.",
    "I cannot browse the web, but I can repeat myself reliably and quickly.",
)

#: ``raise:<kind>`` values understood by the model.
ERROR_KINDS = ("ratelimit", "badrequest", "auth", "unavailable", "connection", "crash", "fail")
#: Words streamed before ``raise:crash`` fails.
CRASH_AFTER_WORDS = 3
MAX_GENERATED_WORDS = 100_000
DEFAULT_WORD_DELAY = 0.05
WORD_DELAY_ENV = "MOCKGPT_WORD_DELAY"

_TOKEN = re.compile(r"\w+|[^\w\s]")
_CONTROL = re.compile(r"^\s*(raise|echo|words|tool):(.*)$", re.IGNORECASE | re.DOTALL)


def count_tokens(text: str) -> int:
    """Count tokens locally: words and single punctuation marks (no tokenizer download)."""
    return len(_TOKEN.findall(text))


def parse_control(message: str) -> tuple[str, str] | None:
    """Split a control message into ``(verb, argument)``; None for an ordinary prompt."""
    match = _CONTROL.match(message)
    if match is None:
        return None
    return match.group(1).lower(), match.group(2).strip()


def choose_reply(message: str) -> str:
    """The reply for an ordinary prompt, picked by a stable hash of the message."""
    control = parse_control(message)
    if control is not None:
        verb, argument = control
        if verb == "echo":
            return argument
        if verb == "words":
            try:
                count = int(argument)
            except ValueError:
                count = 0
            count = max(0, min(count, MAX_GENERATED_WORDS))
            return " ".join(f"w{i}" for i in range(1, count + 1))
    digest = hashlib.sha256(message.encode("utf-8")).digest()
    return CANNED_REPLIES[digest[0] % len(CANNED_REPLIES)]


def split_words(reply: str) -> list[str]:
    """Stream pieces: each word keeps the space before it, so joining them restores the reply."""
    words = reply.split(" ")
    return [words[0], *(" " + word for word in words[1:])] if reply else []


def apply_stop(reply: str, stop: Iterable[str] | None) -> tuple[str, bool]:
    """Cut the reply at the first stop sequence; True when it was cut."""
    cut = len(reply)
    for sequence in stop or ():
        if sequence:
            position = reply.find(sequence)
            if position != -1:
                cut = min(cut, position)
    return reply[:cut], cut < len(reply)


def word_delay(parameter: object) -> float:
    """Seconds to pause per word: the ``word_delay`` model parameter, else the env var, else 0.05."""
    if isinstance(parameter, int | float) and not isinstance(parameter, bool):
        return max(0.0, float(parameter))
    raw = os.environ.get(WORD_DELAY_ENV, "").strip()
    if not raw:
        return DEFAULT_WORD_DELAY
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{WORD_DELAY_ENV} must be a number of seconds") from None
