"""Small fakes for the handler's unit tests (no SDK, no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dify_lambda import wire
from dify_lambda.handlers.dispatch import Invocation, Outcome
from dify_lambda.handlers.errors import InvalidRequestError
from dify_lambda.handlers.observability import InvocationRecord, Rejection


class FakeRuntime:
    """Streams ``words`` as stream lines; ``data.fail`` makes it raise after them."""

    plugin_id = "tests/fake"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.closed: list[str] = []

    def prepare(self, action: str, data: dict[str, Any]) -> object:
        if not isinstance(data.get("words", []), list):
            raise InvalidRequestError(f"invalid request for action {action}: field 'data.words': not a list")
        return data

    def run(self, invocation: Invocation, prepared: object, outcome: Outcome) -> Iterator[bytes]:
        assert isinstance(prepared, dict)
        sid = invocation.session_id
        self.started.append(sid)
        try:
            for word in prepared.get("words", []):
                yield wire.session_line(sid, "stream", {"word": word})
            if prepared.get("fail"):
                outcome.error_type = "BoomError"
                yield wire.error_line(sid, "BoomError", "boom")
            yield wire.end_line(sid)
        finally:
            self.closed.append(sid)


class RecordingObserver:
    def __init__(self) -> None:
        self.finished: list[InvocationRecord] = []
        self.rejections: list[Rejection] = []

    def plugin_loaded(self, *, sdk_version: str, init_ms: float) -> None:
        pass

    def invocation_finished(self, record: InvocationRecord) -> None:
        self.finished.append(record)

    def rejected(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)


class FakeSecret:
    def __init__(self, value: str) -> None:
        self.value = value

    def current(self) -> str:
        return self.value


class FakeProvider:
    """Stands in for a Powertools parameter provider."""

    def __init__(self, values: dict[str, Any], *, fail: bool = False) -> None:
        self.values = values
        self.fail = fail
        self.calls: list[tuple[str, int | None, dict[str, Any]]] = []

    def get(self, name: str, max_age: int | None = None, **options: Any) -> Any:
        self.calls.append((name, max_age, options))
        if self.fail:
            raise ConnectionError("endpoint unreachable")
        return self.values[name]
