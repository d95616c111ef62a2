"""Dify integration against a small fake module tree shaped like Dify's ``core.plugin`` (no real Dify).

The fake ``BasePluginClient`` parses lines the way the host does (docs/wire-protocol.md §5.2-§5.3): it is
how these tests check that the router's lines turn into the right host exceptions.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from router_fakes import FakeClock, Reply, ScriptedTransport, end, error, llm_chunk, ok, stream

from dify_lambda import wire
from dify_lambda.errors import RouterError
from dify_lambda.router.client import Router
from dify_lambda.router.dify import (
    TRANSPORT_FAILED,
    daemon_error_line,
    envelope_lines,
    install,
    invoke_error_line,
    success_line,
)
from dify_lambda.router.routes import parse_route_table

HOST = "fn.lambda-url.us-east-1.on.aws"
ROUTED = "langgenius/mockgpt"


class HostError(Exception):
    """Stands for the host's exception classes; ``kind`` is the class name the host would raise."""

    def __init__(self, kind: str, description: str, code: int | None = None) -> None:
        super().__init__(f"{kind}: {description}")
        self.kind, self.description, self.code = kind, description, code


INVOKE_ERRORS = {
    "InvokeRateLimitError", "InvokeAuthorizationError", "InvokeBadRequestError",
    "InvokeConnectionError", "InvokeServerUnavailableError",
}  # fmt: skip


def make_base_class(old_layout: bool) -> type:
    class Base:
        daemon_calls: list[tuple[str, str]] = []
        daemon_bodies: list[Any] = []

        def _stream_request(
            self,
            method: str,
            path: str,
            params: Any = None,
            headers: Any = None,
            data: Any = None,
            files: Any = None,
        ) -> Iterator[str]:
            type(self).daemon_calls.append((method, path))
            type(self).daemon_bodies.append(data)
            yield json.dumps({"code": 0, "message": "success", "data": {"from": "daemon"}})

        def _request_with_plugin_daemon_response_stream(
            self, method: str, path: str, type_: Any = dict, headers: Any = None, data: Any = None
        ) -> Iterator[Any]:
            for line in self._stream_request(method, path, None, headers, data, None):
                rep = json.loads(line)
                if rep["code"] != 0:
                    if rep["code"] == -500:
                        try:
                            err = json.loads(rep["message"])
                        except ValueError:
                            raise HostError("PluginDaemonInnerError", rep["message"], -500) from None
                        self._handle(err["error_type"], err["message"])
                    raise ValueError(f"plugin daemon: {rep['message']}, code: {rep['code']}")
                if rep["data"] is None:
                    raise ValueError("got empty data")
                yield rep["data"]

        def _handle(self, error_type: str, message: str) -> None:
            if error_type == "PluginDaemonInnerError":
                raise HostError("PluginDaemonInnerError", message, -500)
            if error_type == "PluginInvokeError":
                inner = json.loads(message)
                kind = inner.get("error_type")
                # Old hosts read args.description, new ones message: the router must serve both.
                description = inner["args"]["description"] if old_layout else inner["message"]
                if kind in INVOKE_ERRORS or kind == "CredentialsValidateFailedError":
                    raise HostError(kind, description)
                raise HostError("PluginInvokeError", message)
            raise HostError(error_type, message)

    return Base


@pytest.fixture(params=["impl", "manager"])
def dify_tree(request: pytest.FixtureRequest) -> Iterator[type]:
    old = request.param == "manager"
    module_name = "core.plugin.manager.base" if old else "core.plugin.impl.base"
    class_name = "BasePluginManager" if old else "BasePluginClient"
    names = ["core", "core.plugin", module_name.rsplit(".", 1)[0], module_name]
    saved = {n: sys.modules.get(n) for n in names}
    base = make_base_class(old)
    base.__name__ = class_name
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    setattr(sys.modules[module_name], class_name, base)
    try:
        yield base
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def router_with(*replies: Any) -> tuple[Router, ScriptedTransport]:
    clock = FakeClock()
    transport = ScriptedTransport({HOST: list(replies)}, clock)
    table = parse_route_table(
        {"routes": {ROUTED: {"deployments": [{"url": f"https://{HOST}/", "auth": "none"}]}}}, source="t"
    )
    return Router(table, transport=transport, clock=clock, sleep=clock.sleep), transport


def _model_type(path: str) -> str:
    spec = wire.ACTIONS_BY_DISPATCH_PATH.get(path.split("/dispatch/", 1)[-1])
    return spec.model_type if spec is not None and spec.model_type else "llm"


def call(client: Any, path: str, plugin_id: str = ROUTED, data: Any = None) -> list[Any]:
    body = (
        data
        if data is not None
        else {
            "user_id": "u1",
            "data": {"provider": "mockgpt", "model_type": _model_type(path), "model": "m", "credentials": {}},
        }
    )
    headers = {"X-Plugin-ID": plugin_id, "Content-Type": "application/json"}
    return list(
        client._request_with_plugin_daemon_response_stream("POST", path, dict, headers=headers, data=body)
    )


def test_routed_llm_call_goes_to_router_with_prompt_messages_emptied(dify_tree: type) -> None:
    chunk = {**llm_chunk("hi"), "prompt_messages": [{"role": "user", "content": "secret prompt"}]}
    router, transport = router_with(ok(stream(chunk), end()))
    handle = install(router)
    out = call(dify_tree(), "plugin/tenant-1/dispatch/llm/invoke")
    assert out == [{**chunk, "prompt_messages": []}]
    assert dify_tree.daemon_calls == []
    sent = json.loads(transport.requests[0].content)
    assert sent["data"]["action"] == "invoke_llm" and sent["data"]["user_id"] == "u1"
    handle.uninstall()
    assert call(dify_tree(), "plugin/tenant-1/dispatch/llm/invoke") == [{"from": "daemon"}]


def test_other_plugins_and_paths_go_to_the_daemon(dify_tree: type) -> None:
    router, transport = router_with()
    install(router)
    assert call(dify_tree(), "plugin/t/dispatch/llm/invoke", plugin_id="someone/else") == [{"from": "daemon"}]
    assert call(dify_tree(), "plugin/t/dispatch/tool/invoke") == [{"from": "daemon"}]
    assert call(dify_tree(), "plugin/t/management/models") == [{"from": "daemon"}]
    assert len(dify_tree.daemon_calls) == 3
    assert transport.requests == []


def test_explicit_plugin_ids_and_bytes_body(dify_tree: type) -> None:
    router, _ = router_with(ok(stream({"num_tokens": 4}), end()))
    install(router, plugin_ids=[ROUTED])
    body = json.dumps({"user_id": "u", "data": {"provider": "p", "model_type": "llm", "model": "m"}}).encode()
    assert call(dify_tree(), "plugin/t/dispatch/llm/num_tokens", data=body) == [{"num_tokens": 4}]


def test_plugin_error_maps_to_host_invoke_error(dify_tree: type) -> None:
    msg = "[models] Rate Limit Error, slow down"
    router, _ = router_with(
        ok(error("InvokeRateLimitError", msg, {"description": msg, "traceback": "tb"}), end())
    )
    install(router)
    with pytest.raises(HostError) as info:
        call(dify_tree(), "plugin/t/dispatch/llm/invoke")
    assert (info.value.kind, info.value.description) == ("InvokeRateLimitError", msg)


def test_plugin_error_without_description_still_serves_old_hosts(dify_tree: type) -> None:
    router, _ = router_with(ok(error("InvokeBadRequestError", "bad thing", {}), end()))
    install(router)
    with pytest.raises(HostError) as info:
        call(dify_tree(), "plugin/t/dispatch/llm/invoke")
    assert (info.value.kind, info.value.description) == ("InvokeBadRequestError", "bad thing")


def test_lambda_failure_is_plugin_runtime_error(dify_tree: type) -> None:
    router, _ = router_with(
        Reply(403, {"x-amzn-requestid": "rid-1", "x-amzn-errortype": "AccessDeniedException"})
    )
    install(router)
    with pytest.raises(HostError) as info:
        call(dify_tree(), "plugin/t/dispatch/text_embedding/invoke")
    assert info.value.kind == "PluginInvokeError"
    inner = json.loads(info.value.description)
    assert inner["error_type"] == "PluginRuntimeError"
    assert inner["message"] == "Plugin runtime request failed: AccessDeniedException"
    assert inner["args"]["status_code"] == 403 and inner["args"]["request_id"] == "rid-1"


def test_transport_error_is_daemon_inner_error(dify_tree: type) -> None:
    router, _ = router_with(*[httpx.ConnectError("refused")] * 3)
    install(router)
    with pytest.raises(HostError) as info:
        call(dify_tree(), "plugin/t/dispatch/llm/invoke")
    assert (info.value.kind, info.value.description, info.value.code) == (
        "PluginDaemonInnerError",
        TRANSPORT_FAILED,
        -500,
    )


def test_cooldown_after_connection_failures_is_the_same_daemon_inner_error(dify_tree: type) -> None:
    router, transport = router_with(*[httpx.ConnectError("refused")] * 3)
    install(router)
    kinds = []
    for _ in range(2):  # the failure itself, then a call refused while the deployment cools down
        with pytest.raises(HostError) as info:
            call(dify_tree(), "plugin/t/dispatch/llm/invoke")
        kinds.append((info.value.kind, info.value.description, info.value.code))
    assert kinds == [("PluginDaemonInnerError", TRANSPORT_FAILED, -500)] * 2
    assert len(transport.requests) == 3  # the second call sent nothing


def test_cooldown_after_throttling_stays_an_invoke_error(dify_tree: type) -> None:
    router, _ = router_with(Reply(429, {"retry-after": "50"}))
    router.policy = replace(router.policy, max_attempts=1)
    install(router)
    for _ in range(2):
        with pytest.raises(HostError) as info:
            call(dify_tree(), "plugin/t/dispatch/llm/invoke")
        assert info.value.kind == "PluginInvokeError"


LLM_DATA = {"provider": "mockgpt", "model_type": "llm", "model": "m", "credentials": {"k": "v"}}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # newer Dify's hosted-quota calls: real credentials in `redirect`, `credentials` empty
        (
            "plugin/t/dispatch/llm/invoke",
            {"user_id": "u", "data": {**LLM_DATA, "credentials": {}, "redirect": {}}},
        ),
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u", "redirect": {"credentials": {}}, "data": LLM_DATA}),
        ("plugin/t/dispatch/redirect/llm/invoke", {"user_id": "u", "data": LLM_DATA}),
        # shapes the router does not fully understand
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u", "data": LLM_DATA, "extra": 1}),
        ("plugin/t/dispatch/llm/invoke", {"user_id": 7, "data": LLM_DATA}),
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u", "data": [LLM_DATA]}),
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u"}),
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u", "data": {**LLM_DATA, "credentials": "k"}}),
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u", "data": {**LLM_DATA, "model_type": "tts"}}),
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u", "data": {**LLM_DATA, "action": "invoke_tts"}}),
        ("plugin/t/dispatch/llm/invoke", {"user_id": "u", "data": {**LLM_DATA, "user_id": "other"}}),
        ("plugin/t/dispatch/llm/invoke", b"not json"),
        ("plugin/t/dispatch/llm/invoke", [1, 2]),
    ],
)
def test_calls_the_router_does_not_fully_understand_go_to_dify_unchanged(
    dify_tree: type, path: str, body: Any
) -> None:
    router, transport = router_with()
    install(router)
    assert call(dify_tree(), path, data=body) == [{"from": "daemon"}]
    assert transport.requests == []
    assert dify_tree.daemon_calls == [("POST", path)]
    assert dify_tree.daemon_bodies == [body]  # the very object Dify passed, unchanged


def test_params_or_files_send_the_call_to_dify(dify_tree: type) -> None:
    router, transport = router_with()
    install(router)
    client = dify_tree()
    headers = {"X-Plugin-ID": ROUTED}
    body = {"user_id": "u", "data": LLM_DATA}
    for extra in ({"params": {"a": "b"}}, {"files": {"f": b"x"}}):
        lines = list(
            client._stream_request(
                "POST", "plugin/t/dispatch/llm/invoke", extra.get("params"), headers, body, extra.get("files")
            )
        )
        assert json.loads(lines[0])["data"] == {"from": "daemon"}
    assert transport.requests == []


def test_mid_stream_cut_is_an_error_not_a_truncation(dify_tree: type) -> None:
    router, _ = router_with(ok(stream(llm_chunk("a")), httpx.ReadError("reset")))
    install(router)
    got: list[Any] = []
    with pytest.raises(HostError) as info:
        for item in dify_tree()._request_with_plugin_daemon_response_stream(
            "POST", "plugin/t/dispatch/llm/invoke", dict,
            headers={"X-Plugin-ID": ROUTED}, data={"user_id": "u", "data": {"provider": "mockgpt"}},
        ):  # fmt: skip
            got.append(item)
    assert len(got) == 1
    assert json.loads(info.value.description)["error_type"] == "PluginDaemonInnerError"


def test_reinstall_replaces_and_missing_dify_is_reported(dify_tree: type) -> None:
    router, _ = router_with(ok(stream({"num_tokens": 1}), end()))
    first = install(router)
    second = install(router)
    assert second.original is first.original
    second.uninstall()
    assert call(dify_tree(), "plugin/t/dispatch/llm/num_tokens") == [{"from": "daemon"}]
    with pytest.raises(RouterError, match="Dify's plugin client was not found"):
        install(router, targets=[("no_such_dify_module.base", "X")])


def test_line_formats_exact() -> None:
    assert success_line({"a": 1}) == '{"code":0,"message":"success","data":{"a":1}}'
    line = json.loads(invoke_error_line("InvokeBadRequestError", "boom", {"traceback": "t"}))
    assert line["code"] == -500 and line["data"] is None
    outer = json.loads(line["message"])
    assert outer["error_type"] == "PluginInvokeError" and outer["args"] is None
    inner = json.loads(outer["message"])
    assert inner == {
        "args": {"traceback": "t", "description": "boom"},
        "error_type": "InvokeBadRequestError",
        "message": "boom",
    }
    single = json.loads(daemon_error_line("PluginDaemonInnerError", TRANSPORT_FAILED))
    assert json.loads(single["message"]) == {
        "message": TRANSPORT_FAILED,
        "error_type": "PluginDaemonInnerError",
        "args": None,
    }


def test_envelope_lines_unknown_path_and_bad_body() -> None:
    router, _ = router_with()
    lines = list(envelope_lines(router, "tool/invoke", plugin_id=ROUTED, tenant_id="t", payload={"data": {}}))
    assert json.loads(json.loads(lines[0])["message"])["error_type"] == "PluginDaemonNotFoundError"
    lines = list(
        envelope_lines(router, "llm/invoke", plugin_id=ROUTED, tenant_id="t", payload={"user_id": "u"})
    )
    assert json.loads(json.loads(lines[0])["message"])["error_type"] == "PluginDaemonBadRequestError"


class FirstTokenTimeoutError(Exception):
    """Stands for the newest host's ``core.plugin.impl.first_token_timeout.FirstTokenTimeoutError``."""


@pytest.fixture
def first_token_gate(dify_tree: type) -> Iterator[Any]:
    import contextvars

    name = "core.plugin.impl.first_token_timeout"
    module = types.ModuleType(name)
    module.first_token_timeout_ctx = contextvars.ContextVar("first_token_timeout", default=None)  # type: ignore[attr-defined]
    module.FirstTokenTimeoutError = FirstTokenTimeoutError  # type: ignore[attr-defined]
    sys.modules[name] = module
    try:
        yield module.first_token_timeout_ctx  # type: ignore[attr-defined]
    finally:
        sys.modules.pop(name, None)


def test_host_first_token_gate_is_honoured(dify_tree: type, first_token_gate: Any) -> None:
    from router_fakes import Wait

    router, _ = router_with(
        ok(Wait(3.0), stream(llm_chunk("late")), end()), ok(Wait(3.0), stream(llm_chunk("ok")), end())
    )
    install(router)
    token = first_token_gate.set(1.5)
    try:
        with pytest.raises(FirstTokenTimeoutError, match=r"within 1\.5s"):
            call(dify_tree(), "plugin/t/dispatch/llm/invoke")
    finally:
        first_token_gate.reset(token)
    # Gate off: the router's own first-event timeout (300 s) applies and the slow chunk arrives.
    assert call(dify_tree(), "plugin/t/dispatch/llm/invoke")[0]["delta"]["message"]["content"] == "ok"


def test_empty_body_is_no_valid_session_response(dify_tree: type) -> None:
    router, _ = router_with(ok())
    install(router)
    with pytest.raises(HostError) as info:
        call(dify_tree(), "plugin/t/dispatch/llm/invoke")
    inner = json.loads(info.value.description)
    assert inner["error_type"] == "PluginRuntimeError"
    assert inner["message"] == "Plugin runtime request failed: no valid session response"
