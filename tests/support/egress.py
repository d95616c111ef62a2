"""Records every outbound network attempt of this process (audit hooks, PEP 578).

Hostile-input tests wrap their work in :class:`Egress` and then assert that nothing left the
machine except to addresses the test itself started: ``egress.assert_only(port, ...)``. DNS
look-ups count too (``socket.getaddrinfo``), since resolving a name already leaks it. Audit hooks
cannot be removed, so one hook is installed per process and records only while an
:class:`Egress` is active.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from types import TracebackType
from typing import Any

_lock = threading.Lock()
_active: list[Egress] = []
_installed = False

_LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in ("socket.connect", "socket.sendto", "socket.getaddrinfo") or not _active:
        return
    if event == "socket.getaddrinfo":
        target: Any = (args[0], args[1])
    else:
        target = args[1]
    with _lock:
        for egress in _active:
            egress.attempts.append((event, target))


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or (isinstance(host, str) and host.lower() in _LOCAL_NAMES):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class Egress:
    """Context manager collecting ``(event, address)`` for connects, sends and DNS look-ups."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, Any]] = []

    def __enter__(self) -> Egress:
        global _installed
        with _lock:
            if not _installed:
                sys.addaudithook(_hook)
                _installed = True
            _active.append(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with _lock:
            _active.remove(self)

    def outside(self, *ports: int) -> list[tuple[str, Any]]:
        """Attempts that went anywhere but a loopback address on one of ``ports``."""
        allowed = set(ports)
        bad = []
        for event, target in self.attempts:
            if isinstance(target, str | bytes):  # AF_UNIX path: stays on the machine
                continue
            host, port = (target[0], target[1]) if isinstance(target, tuple) else (target, None)
            if not _is_loopback(host) or (event != "socket.getaddrinfo" and port not in allowed):
                bad.append((event, target))
        return bad

    def assert_only(self, *ports: int) -> None:
        bad = self.outside(*ports)
        assert not bad, f"network attempts outside the test's own servers: {bad}"
