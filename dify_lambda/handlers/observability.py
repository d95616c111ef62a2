"""Structured logs and EMF metrics with Powertools (what is recorded: docs/handler.md, "Observability").

Identifiers and numbers only: bodies, credentials, prompt text and exception messages (which can quote
them) never reach a log line or a metric. Both go to ``sys.__stdout__``: once ``dify_plugin`` is
imported, ``sys.stdout`` is gevent's thread-pool file wrapper, a thread hop per write.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import IO, Any, Protocol

__all__ = ["METRICS_NAMESPACE", "InvocationRecord", "Observer", "PowertoolsObserver", "Rejection"]

METRICS_NAMESPACE = "DifyLambda"
SERVICE_NAME = "dify-lambda"


@dataclass(slots=True)
class InvocationRecord:
    """One finished ``/invoke`` stream."""

    request_id: str
    session_id: str
    action: str
    duration_ms: float
    #: None when no event was produced (client went away before the first one).
    time_to_first_event_ms: float | None
    events: int
    error_type: str | None
    #: False when the stream was cut before the ``end`` line (client disconnect, transport error).
    completed: bool


@dataclass(slots=True)
class Rejection:
    """A request answered with a 4xx (or a 500 from a handler bug)."""

    request_id: str
    status: int
    error_type: str
    action: str | None = None


class Observer(Protocol):
    """Where the application core reports what happened (a fake in unit tests)."""

    def plugin_loaded(self, *, sdk_version: str, init_ms: float) -> None: ...

    def invocation_finished(self, record: InvocationRecord) -> None: ...

    def rejected(self, rejection: Rejection) -> None: ...


class PowertoolsObserver:
    """JSON logs through a Powertools ``Logger`` and EMF metrics through ``Metrics``."""

    def __init__(self, plugin_id: str, *, stream: IO[str] | None = None) -> None:
        from aws_lambda_powertools import Logger, Metrics
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled

        self._plugin_id = plugin_id
        self._stream = stream or sys.__stdout__ or sys.stdout
        self._logger = Logger(service=SERVICE_NAME, stream=self._stream)
        self._metrics = Metrics(namespace=METRICS_NAMESPACE)
        self._metrics_disabled = is_metrics_disabled()
        self._cold_start = True

    def _common(self, request_id: str) -> dict[str, Any]:
        cold, self._cold_start = self._cold_start, False
        return {"request_id": request_id, "plugin_id": self._plugin_id, "cold_start": cold}

    def plugin_loaded(self, *, sdk_version: str, init_ms: float) -> None:
        self._logger.info(
            "plugin loaded",
            extra={"plugin_id": self._plugin_id, "sdk_version": sdk_version, "init_ms": round(init_ms, 2)},
        )

    def invocation_finished(self, record: InvocationRecord) -> None:
        fields = self._common(record.request_id) | {
            "session_id": record.session_id,
            "action": record.action,
            "duration_ms": round(record.duration_ms, 3),
            "time_to_first_event_ms": None
            if record.time_to_first_event_ms is None
            else round(record.time_to_first_event_ms, 3),
            "events": record.events,
            "error_type": record.error_type,
            "completed": record.completed,
        }
        if record.error_type is None and record.completed:
            self._logger.info("invocation finished", extra=fields)
        else:
            self._logger.warning("invocation finished with an error", extra=fields)
        self._flush(record.action, self._invocation_metrics(record))
        if record.error_type is not None:
            self._flush(record.action, [("Errors", "Count", 1.0)], error_type=record.error_type)

    @staticmethod
    def _invocation_metrics(record: InvocationRecord) -> list[tuple[str, str, float]]:
        metrics = [
            ("Invocations", "Count", 1.0),
            ("Duration", "Milliseconds", record.duration_ms),
            ("Events", "Count", float(record.events)),
        ]
        if record.time_to_first_event_ms is not None:
            metrics.append(("TimeToFirstEvent", "Milliseconds", record.time_to_first_event_ms))
        return metrics

    def rejected(self, rejection: Rejection) -> None:
        fields = self._common(rejection.request_id) | {
            "status": rejection.status,
            "error_type": rejection.error_type,
            "action": rejection.action,
        }
        self._logger.warning("request rejected", extra=fields)
        self._flush(rejection.action or "none", [("Rejected", "Count", 1.0)], error_type=rejection.error_type)

    def _flush(
        self, action: str, metrics: list[tuple[str, str, float]], *, error_type: str | None = None
    ) -> None:
        self._metrics.add_dimension(name="plugin_id", value=self._plugin_id)
        self._metrics.add_dimension(name="action", value=action)
        if error_type is not None:
            self._metrics.add_dimension(name="error_type", value=error_type)
        for name, unit, value in metrics:
            self._metrics.add_metric(name=name, unit=unit, value=value)
        # What Metrics.flush_metrics does, but written to our stream instead of print().
        if not self._metrics_disabled:
            blob = self._metrics.serialize_metric_set()
            self._stream.write(json.dumps(blob, separators=(",", ":")) + "\n")
            self._stream.flush()
        self._metrics.clear_metrics()
