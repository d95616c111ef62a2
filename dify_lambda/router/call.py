"""What one call carries through the router: its timeouts and identity (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass

from dify_lambda import wire

__all__ = ["CallInfo", "Timeouts", "invoke_url"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``first_event`` runs from the send to the first event; ``idle`` bounds the gap
    between reads afterwards; ``total`` bounds the whole call including retries."""

    connect: float = 10.0
    first_event: float = 300.0
    idle: float = 300.0
    total: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect", "first_event", "idle", "total"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Timeouts.{name} must be > 0")


@dataclass(frozen=True, slots=True)
class CallInfo:
    """One logical call: what is called, with which settings. Immutable: each attempt gets its own
    copy whose ``url`` names that attempt's deployment (``dataclasses.replace``)."""

    plugin_id: str
    action: str
    session_id: str
    timeouts: Timeouts
    raise_errors: bool = True
    tenant_id: str | None = None
    provider: str | None = None
    model: str | None = None
    url: str = ""


def invoke_url(base: str, action: str) -> str:
    return f"{base.rstrip('/')}{wire.INVOKE_PATH}?action={action}"
