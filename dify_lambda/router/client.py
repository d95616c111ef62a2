"""The router client: sends model calls straight to Lambda function URLs, no daemon in between.

One :class:`Router` per process holds one pooled ``httpx.Client`` (plain blocking sockets, so it
runs in gevent-patched workers), the route table, and the per-deployment cooldowns. Calls are lazy:
nothing is sent until the first ``next()`` on the iterator returned by :meth:`Router.invoke`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import Any

import httpx

from dify_lambda import wire
from dify_lambda.router.auth import SigV4Signer, auth_headers
from dify_lambda.router.batching import MERGERS, ItemTooLarge, encoded_size, plan_batches, too_large_message
from dify_lambda.router.call import CallInfo, Timeouts, invoke_url
from dify_lambda.router.errors import (
    AllDeploymentsCoolingDownError,
    FirstEventTimeoutError,
    LambdaError,
    NoRouteError,
    PayloadTooLargeError,
    RetryableError,
)
from dify_lambda.router.events import EndEvent, ErrorEvent, Event, StreamEvent
from dify_lambda.router.methods import ModelMethods
from dify_lambda.router.policy import (
    CooldownTracker,
    Failure,
    RetryPolicy,
    classify_response,
    classify_transport_error,
)
from dify_lambda.router.routes import Deployment, RouteTable
from dify_lambda.router.sources import RouteCache
from dify_lambda.router.stream import RetryBeforeStart, error_detail, read_events, status_text
from dify_lambda.router.transport import DeadlineTransport, reads_within

__all__ = ["Router", "Timeouts"]

logger = logging.getLogger("dify_lambda.router")


class Router(ModelMethods):
    """Dispatches model calls to function URLs with retries, fail-over and cooldowns.

    Parameters
    ----------
    routes:
        A :class:`RouteTable`, or a :class:`RouteCache` refreshed from a file, stack outputs or tags.
    transport:
        An httpx transport (tests inject a scripted one); default: a pooled :class:`DeadlineTransport`.
    credentials:
        Callable returning botocore credentials for ``iam`` deployments (default: botocore's chain).
    clock, sleep, rng:
        Injectable time source, sleep and random source (backoff jitter, weighted choice).
    keep_delivered:
        Keep delivered payloads so a :class:`StreamInterruptedError` can carry them (memory cost).

    Examples
    --------
    >>> router = Router(load_route_file("routes.yaml"))                  # doctest: +SKIP
    >>> for chunk in router.invoke_llm(tenant_id="t", user_id="u", plugin_id="langgenius/openai",
    ...                                provider="openai", model="gpt-4o-mini", credentials={...},
    ...                                prompt_messages=[{"role": "user", "content": "hi"}]):
    ...     print(chunk["delta"]["message"]["content"], end="")            # doctest: +SKIP
    """

    def __init__(
        self,
        routes: RouteTable | RouteCache,
        *,
        transport: httpx.BaseTransport | None = None,
        timeouts: Timeouts | None = None,
        policy: RetryPolicy | None = None,
        credentials: Callable[[], Any] | None = None,
        max_request_bytes: int = wire.MAX_REQUEST_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        keep_delivered: bool = False,
    ) -> None:
        self._routes = routes if isinstance(routes, RouteCache) else RouteCache.static(routes)
        self.timeouts = timeouts or Timeouts()
        self.policy = policy or RetryPolicy()
        self.max_request_bytes = max_request_bytes
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self._keep = keep_delivered
        self.cooldowns = CooldownTracker(clock=clock)
        self._signer = SigV4Signer(credentials) if credentials is not None else SigV4Signer()
        self._client = httpx.Client(
            transport=transport or DeadlineTransport(), trust_env=False, follow_redirects=False
        )

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def routes(self) -> RouteTable:
        return self._routes.get()

    @property
    def plugin_ids(self) -> tuple[str, ...]:
        return self.routes.plugin_ids

    # --- calls -------------------------------------------------------------------------------

    def invoke(
        self,
        plugin_id: str,
        action: str,
        data: dict[str, Any],
        *,
        user_id: str,
        tenant_id: str | None = None,
        session_id: str | None = None,
        timeout: float | Timeouts | None = None,
        raise_errors: bool = True,
    ) -> Iterator[Event]:
        """Call ``action`` on the plugin; a lazy iterator of events ending with :class:`EndEvent`.

        ``data`` holds the action's fields (``provider``, ``model_type``, ``model``, ``credentials``
        ...). With ``raise_errors`` (default) a plugin ``error`` raises :class:`PluginInvokeError`;
        otherwise it is yielded as an :class:`ErrorEvent` before the end. Every other failure raises
        a :class:`~dify_lambda.router.errors.InvocationError` subclass.
        """
        timeouts = self.timeouts
        if isinstance(timeout, Timeouts):
            timeouts = timeout
        elif timeout is not None:
            timeouts = replace(timeouts, total=timeout, first_event=min(timeouts.first_event, timeout))
        provider, model = data.get("provider"), data.get("model")
        call = CallInfo(
            plugin_id,
            action,
            session_id or wire.new_session_id(),
            timeouts,
            raise_errors,
            tenant_id,
            provider if isinstance(provider, str) else None,
            model if isinstance(model, str) else None,
        )
        return self._invoke(call, data, user_id)

    def _invoke(self, call: CallInfo, data: dict[str, Any], user_id: str) -> Iterator[Event]:
        """The lazy part of :meth:`invoke`: nothing is built or sent before the first ``next()``."""
        action = call.action
        envelope = wire.build_envelope(action, data, user_id=user_id, session_id=call.session_id)
        body = wire.encode_envelope(envelope)
        if len(body) <= self.max_request_bytes:
            yield from self._attempts(call, body)
            return
        texts = data.get("texts")
        if action not in MERGERS or not isinstance(texts, list):
            raise PayloadTooLargeError(
                too_large_message(action, len(body), self.max_request_bytes),
                payload_bytes=len(body),
                max_request_bytes=self.max_request_bytes,
                call=call,
            )
        yield from self._batched(call, envelope, texts)

    def _batched(self, call: CallInfo, envelope: dict[str, Any], texts: list[Any]) -> Iterator[Event]:
        base = dict(envelope, data=dict(envelope["data"], texts=[]))
        try:
            ranges = plan_batches(encoded_size(base), texts, self.max_request_bytes)
        except ItemTooLarge as exc:
            total = encoded_size(envelope)
            raise PayloadTooLargeError(
                too_large_message(call.action, total, self.max_request_bytes, exc.index),
                payload_bytes=total,
                max_request_bytes=self.max_request_bytes,
                item_index=exc.index,
                call=call,
            ) from None
        logger.info(
            "splitting %s into %d serial batches",
            call.action,
            len(ranges),
            extra={"session_id": call.session_id},
        )
        results: list[dict[str, Any]] = []
        for start, end in ranges:
            part = dict(
                envelope,
                session_id=wire.new_session_id(),
                data=dict(envelope["data"], texts=texts[start:end]),
            )
            sub = replace(call, session_id=part["session_id"])
            for event in self._attempts(sub, wire.encode_envelope(part)):
                if isinstance(event, ErrorEvent):  # raise_errors=False: pass the error through and stop
                    yield event
                    yield EndEvent({})
                    return
                if isinstance(event, StreamEvent) and isinstance(event.data, dict):
                    results.append(event.data)
        yield StreamEvent(MERGERS[call.action](results))
        yield EndEvent({})

    # --- attempts, retries, fail-over --------------------------------------------------------

    def _choose(self, deployments: tuple[Deployment, ...], exclude: set[str]) -> Deployment | None:
        candidates = [d for d in deployments if d.key not in exclude and self.cooldowns.remaining(d.key) <= 0]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        point = self._rng() * sum(d.weight for d in candidates)
        for dep in candidates:
            point -= dep.weight
            if point < 0:
                return dep
        return candidates[-1]

    def _attempts(self, call: CallInfo, body: bytes) -> Iterator[Event]:
        deployments = self.routes.deployments_for(
            call.plugin_id, provider=call.provider, model=call.model, tenant_id=call.tenant_id
        )
        if not deployments:
            raise NoRouteError(f"route for plugin id {call.plugin_id!r} has no deployments")
        deadline = self._clock() + call.timeouts.total
        tried: set[str] = set()
        dep = self._choose(deployments, tried)
        if dep is None:
            wait = min(self.cooldowns.remaining(d.key) for d in deployments)
            raise AllDeploymentsCoolingDownError(
                f"all {len(deployments)} deployment(s) of plugin {call.plugin_id!r} are cooling down"
                f" (next available in {wait:.1f}s)",
                retry_in=wait,
                kinds=frozenset(self.cooldowns.kind(d.key) for d in deployments),
                call=call,
            )
        attempt = 0
        while True:
            attempt += 1
            this = replace(call, url=dep.url)
            failure, detail = yield from self._attempt(this, dep, body, deadline)
            if failure is None:
                return
            self.cooldowns.cool(dep.key, self.policy.cooldown(failure), failure.kind)
            tried.add(dep.key)
            logger.warning(
                "dify-lambda call failed before the first event: plugin=%s action=%s url=%s kind=%s status=%s"
                " error_type=%s attempt=%d session_id=%s",
                call.plugin_id, call.action, dep.url, failure.kind, failure.status,
                failure.error_type, attempt, call.session_id,
            )  # fmt: skip
            if not failure.fail_over or attempt >= self.policy.max_attempts:
                raise self._final_error(this, failure, detail, attempt)
            nxt = self._choose(deployments, tried)
            wait = 0.0
            if nxt is None:
                if not failure.retryable:
                    raise self._final_error(this, failure, detail, attempt)
                # No other deployment: retry the same one after a backoff (ignoring its cooldown).
                backoff = self.policy.backoff(attempt, failure, self._rng)
                if backoff is None:
                    raise self._final_error(this, failure, detail, attempt)
                nxt, wait = dep, backoff
            if self._clock() + wait >= deadline:
                raise self._final_error(this, failure, detail, attempt)
            if wait > 0:
                self._sleep(wait)
            dep = nxt

    def _final_error(
        self, call: CallInfo, failure: Failure, detail: dict[str, str], attempts: int
    ) -> Exception:
        request_id = detail.get("request_id", "")
        if failure.kind in ("auth", "fatal") or (failure.kind == "status" and failure.error_type):
            what = failure.error_type or detail.get("error_type") or status_text(failure.status or 0)
            message = detail.get("message", "")
            return LambdaError(
                f"Plugin runtime request failed: {what}{': ' + message if message else ''}",
                status=failure.status or 0,
                error_type=failure.error_type or detail.get("error_type", ""),
                request_id=request_id,
                call=call,
            )
        last = "connection failed" if failure.kind == "connect" else f"status {failure.status}"
        if failure.error_type:
            last += f" ({failure.error_type})"
        return RetryableError(
            f"all {attempts} attempt(s) failed for plugin {call.plugin_id!r} action {call.action};"
            f" last: {last} from {call.url}",
            kind=failure.kind,
            status=failure.status,
            retry_after=failure.retry_after,
            attempts=attempts,
            error_type=failure.error_type,
            request_id=request_id,
            call=call,
        )

    def _build_request(self, dep: Deployment, call: CallInfo, body: bytes) -> httpx.Request:
        url = invoke_url(dep.url, call.action)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            wire.SESSION_ID_HEADER: call.session_id,
        }
        # Signed right before the send, so a retry is signed afresh.
        headers.update(
            auth_headers(dep, method="POST", url=url, headers=headers, body=body, signer=self._signer)
        )
        # Reads are timed by reads_within (one channel for every read); httpx times the rest.
        connect = call.timeouts.connect
        timeout = httpx.Timeout(connect, read=None, pool=connect)
        return self._client.build_request("POST", url, content=body, headers=headers, timeout=timeout)

    def _attempt(
        self, call: CallInfo, dep: Deployment, body: bytes, deadline: float
    ) -> Generator[Event, None, tuple[Failure | None, dict[str, str]]]:
        """Yields the events of one attempt; returns ``(failure, detail)`` when it may be retried."""
        request = self._build_request(dep, call, body)
        start = self._clock()
        first_deadline = min(deadline, start + call.timeouts.first_event)
        try:
            with reads_within(first_deadline - start):
                response = self._client.send(request, stream=True)
        except httpx.ReadTimeout:
            raise FirstEventTimeoutError(
                f"no response from {dep.url} within {first_deadline - start:.1f}s", call=call
            ) from None
        except httpx.TransportError as exc:
            return classify_transport_error(exc), {}
        try:
            failure = classify_response(response.status_code, response.headers)
            if failure is not None:
                return failure, error_detail(response)
            events = read_events(
                call,
                response,
                first_deadline=first_deadline,
                deadline=deadline,
                clock=self._clock,
                keep=self._keep,
            )
            try:
                first = next(events)
            except RetryBeforeStart as exc:
                return exc.failure, {}
            yield first
            yield from events
            return None, {}
        finally:
            response.close()
