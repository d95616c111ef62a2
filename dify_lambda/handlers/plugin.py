"""The real :class:`~dify_lambda.handlers.dispatch.PluginRuntime`: one plugin loaded with the SDK.

Runs only inside the plugin process (``dify_plugin`` is imported by :meth:`SdkPluginRuntime.load`,
see :mod:`dify_lambda.handlers.sdk_import`). It loads the plugin with the SDK's own public classes
and runs the SDK's per-request loop as a generator, serializing with the SDK's own writer, so every
byte is that release's (docs/handler.md, "SDK versions", "How").
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dify_lambda import wire
from dify_lambda.errors import PluginLoadError
from dify_lambda.handlers.dispatch import Invocation, Outcome
from dify_lambda.handlers.errors import InvalidRequestError, UnknownActionError, UnsupportedSdkError
from dify_lambda.handlers.sdk_import import load_sdk_plugin
from dify_lambda.handlers.sdk_versions import SUPPORTED_SDK, SdkProfile, check_sdk_version

__all__ = [
    "EXECUTOR_METHODS",
    "SUPPORTED_SDK",
    "SdkPluginRuntime",
    "UnsupportedSdkError",
    "check_sdk_version",
]

#: Action → ``PluginExecutor`` method, as the SDK's ``Plugin._register_request_routes`` maps them.
#: A release routes exactly the actions whose method its executor has (older ones lack polling
#: and the multimodal actions); the others it answers with ``end`` only, the handler with 400.
EXECUTOR_METHODS: dict[str, str] = {
    "invoke_llm": "invoke_llm",
    "start_polling": "start_llm_polling",
    "check_polling": "check_llm_polling",
    "get_llm_num_tokens": "get_llm_num_tokens",
    "invoke_text_embedding": "invoke_text_embedding",
    "invoke_multimodal_embedding": "invoke_multimodal_embedding",
    "get_text_embedding_num_tokens": "get_text_embedding_num_tokens",
    "invoke_rerank": "invoke_rerank",
    "invoke_multimodal_rerank": "invoke_multimodal_rerank",
    "invoke_tts": "invoke_tts",
    "get_tts_model_voices": "get_tts_model_voices",
    "invoke_speech2text": "invoke_speech_to_text",
    "invoke_moderation": "invoke_moderation",
    "validate_provider_credentials": "validate_model_provider_credentials",
    "validate_model_credentials": "validate_model_credentials",
    "get_ai_model_schemas": "get_ai_model_schemas",
}
assert set(EXECUTOR_METHODS) == set(wire.MODEL_ACTIONS)

# Validation error types whose pydantic message may quote the input; those are replaced.
_QUOTING_ERRORS = frozenset({"value_error", "assertion_error"})


def describe_validation_error(action: str, errors: list[dict[str, Any]]) -> str:
    """One line naming the first bad field path, without quoting payload values."""
    first = errors[0]
    path = ".".join(["data", *(str(p) for p in first.get("loc", ()))])
    kind = str(first.get("type", "invalid"))
    msg = "invalid value" if kind in _QUOTING_ERRORS else str(first.get("msg", "invalid value"))[:160]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid request for action {action}: field '{path}': {msg} [{kind}]{more}"


@dataclass(frozen=True, slots=True)
class _Route:
    method: Callable[..., Any]
    model: type[Any]


class SdkPluginRuntime:
    """One plugin, loaded once per process, executing requests through the SDK."""

    def __init__(
        self,
        *,
        plugin_id: str,
        sdk_version: str,
        routes: dict[str, _Route],
        sdk: Any,
    ) -> None:
        self._plugin_id = plugin_id
        self.sdk_version = sdk_version
        self._routes = routes
        self._sdk = sdk
        self._profile = SdkProfile.of(sdk_version)

    @property
    def plugin_id(self) -> str:
        return self._plugin_id

    @classmethod
    def load(cls, plugin_root: Path) -> SdkPluginRuntime:
        """Load the plugin at ``plugin_root`` (cwd and ``sys.path[0]`` are set to it)."""
        root = plugin_root.resolve()
        if not (root / "manifest.yaml").is_file():
            raise PluginLoadError(f"no manifest.yaml in the plugin root {root} (DIFY_LAMBDA_PLUGIN_ROOT)")
        try:
            version = metadata.version("dify_plugin")
        except metadata.PackageNotFoundError:
            raise UnsupportedSdkError("dify_plugin is not installed next to the handler") from None
        check_sdk_version(version)  # before anything of the plugin is loaded
        os.chdir(root)
        if sys.path[:1] != [str(root)]:
            sys.path.insert(0, str(root))
        env, registration, executor, sdk = load_sdk_plugin(root, _import_sdk)
        config = registration.configuration
        routes = {
            action: _route(executor, name)
            for action, name in EXECUTOR_METHODS.items()
            if getattr(executor, name, None) is not None
        }
        sdk.env = env
        sdk.session_arguments = _session_arguments(sdk.Session)
        runtime = cls(
            plugin_id=f"{config.author}/{config.name}",
            sdk_version=version,
            routes=routes,
            sdk=sdk,
        )
        runtime._warm_up()
        return runtime

    def _warm_up(self) -> None:
        # Session() imports the SDK's invocation modules on first use; pay that at init (SnapStart).
        self._session(Invocation(session_id="warm-up", action="invoke_llm", data={}), self._sdk.LineWriter())

    def prepare(self, action: str, data: dict[str, Any]) -> object:
        route = self._routes.get(action)
        if route is None:
            # The SDK of this release has no route for it and would answer with ``end`` only.
            raise UnknownActionError(
                f"model action {action} is not served by dify_plugin {self.sdk_version[:40]}, "
                "which this function was built with"
            )
        try:
            return route.model(**data)
        except self._sdk.ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            raise InvalidRequestError(describe_validation_error(action, errors)) from None
        except Exception as exc:
            # SDK validators raise TypeError (not wrapped by pydantic), e.g. "prompt_messages must
            # be a list"; the SDK's router then passes the raw dict on and fails later with an
            # AttributeError. Such messages are the SDK's own text, not payload.
            raise InvalidRequestError(
                f"invalid request for action {action}: {type(exc).__name__}: {str(exc)[:160]}"
            ) from None

    def _session(self, inv: Invocation, writer: Any) -> Any:
        sdk, env = self._sdk, self._sdk.env
        arguments = {
            "session_id": inv.session_id,
            "executor": sdk.pool,
            "reader": sdk.reader,
            "writer": writer,
            "install_method": env.INSTALL_METHOD,
            "dify_plugin_daemon_url": env.DIFY_PLUGIN_DAEMON_URL,
            "conversation_id": inv.conversation_id,
            "message_id": inv.message_id,
            "app_id": inv.app_id,
            "endpoint_id": inv.endpoint_id,
            "context": inv.context,
            "max_invocation_timeout": getattr(env, "MAX_INVOCATION_TIMEOUT", None),
        }
        # Each release's _execute_request passes what its Session accepts (context from 0.4,
        # max_invocation_timeout from 0.5).
        return sdk.Session(**{k: v for k, v in arguments.items() if k in sdk.session_arguments})

    def run(self, invocation: Invocation, prepared: object, outcome: Outcome) -> Iterator[bytes]:
        writer = self._sdk.LineWriter()
        sid = invocation.session_id
        line = writer.session_message_text
        result: Any = None
        try:
            session = self._session(invocation, writer)
            result = self._routes[invocation.action].method(session, prepared)
            # Same truthiness and generator test as Plugin._execute_request.
            if result:
                if isinstance(result, Generator):
                    for item in result:
                        yield from writer.drain()
                        yield line(sid, writer.stream_object(item)).encode()
                else:
                    yield line(sid, writer.stream_object(result)).encode()
        except Exception as exc:
            args = {"traceback": traceback.format_exc()} if self._profile.error_traceback else {}
            if isinstance(exc, self._sdk.InvokeError):
                args["description"] = exc.description
            outcome.error_type = type(exc).__name__
            yield from writer.drain()
            error = {"error_type": type(exc).__name__, "message": str(exc), "args": args}
            try:
                encoded = line(sid, writer.stream_error_object(error)).encode()
            except Exception:  # e.g. an exception whose str() fails: still a typed error, then end
                encoded = wire.error_line(sid, type(exc).__name__, "the plugin error could not be serialized")
            yield encoded
        finally:
            # Stop the plugin's generator if the client went away mid-stream.
            if isinstance(result, Generator):
                result.close()
        yield from writer.drain()
        yield line(sid, writer.stream_end_object()).encode()


def _session_arguments(session: Any) -> frozenset[str]:
    parameters = inspect.signature(session.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise UnsupportedSdkError("dify_plugin's Session takes **kwargs; its arguments cannot be matched")
    return frozenset(parameters) - {"self"}


def _route(executor: Any, name: str) -> _Route:
    method = getattr(executor, name, None)
    if method is None:
        raise UnsupportedSdkError(f"dify_plugin's PluginExecutor has no method {name}")
    parameter = inspect.signature(method).parameters.get("data")
    annotation = parameter.annotation if parameter is not None else None
    if isinstance(annotation, str):
        annotation = getattr(sys.modules[type(executor).__module__], annotation, None)
    if not isinstance(annotation, type):
        raise UnsupportedSdkError(f"dify_plugin's PluginExecutor.{name} has no typed 'data' parameter")
    return _Route(method=method, model=annotation)


def _import_sdk() -> Any:
    """The SDK names this module uses, imported on demand (inside the plugin process only)."""
    try:
        from concurrent.futures import ThreadPoolExecutor

        from dify_plugin.config.config import DifyPluginEnv, InstallMethod
        from dify_plugin.core.plugin_executor import PluginExecutor
        from dify_plugin.core.plugin_registration import PluginRegistration
        from dify_plugin.core.runtime import Session
        from dify_plugin.core.server.__base.request_reader import RequestReader
        from dify_plugin.core.server.__base.response_writer import ResponseWriter
        from dify_plugin.errors.model import InvokeError
        from pydantic import ValidationError
    except ImportError as exc:
        raise UnsupportedSdkError(f"dify_plugin is missing a module this handler needs: {exc}") from exc
    if not hasattr(ResponseWriter, "session_message_text"):
        raise UnsupportedSdkError("dify_plugin's ResponseWriter has no session_message_text")

    class NoReader(RequestReader):  # type: ignore[misc]
        """Serverless sessions never read (callbacks go over HTTP); the Session needs one anyway."""

        def _read_stream(self) -> Generator[Any, None, None]:
            yield from ()

    class LineWriter(ResponseWriter):  # type: ignore[misc]
        """Collects anything written to the session directly, so it is emitted in order."""

        def __init__(self) -> None:
            self.pending: list[bytes] = []

        def write(self, data: str) -> None:
            self.pending.append(data.encode() if isinstance(data, str) else bytes(data))

        def done(self) -> None:
            pass

        def drain(self) -> Iterator[bytes]:
            """What was written directly, as one chunk (nothing when nothing was)."""
            if self.pending:
                chunks, self.pending = self.pending, []
                yield b"".join(chunks)

    return SimpleNamespace(
        LineWriter=LineWriter,
        DifyPluginEnv=DifyPluginEnv,
        InstallMethod=InstallMethod,
        PluginRegistration=PluginRegistration,
        PluginExecutor=PluginExecutor,
        Session=Session,
        InvokeError=InvokeError,
        ValidationError=ValidationError,
        # Sessions keep an executor they never use in serverless mode; one idle pool is enough.
        pool=ThreadPoolExecutor(max_workers=1),
        reader=NoReader(),
    )
