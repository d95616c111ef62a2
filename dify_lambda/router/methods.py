# ruff: noqa: PLR0917  (positional parameters mirror Dify's PluginModelClient on purpose)
"""Convenience methods with the names and parameters of Dify's ``PluginModelClient``.

They build the action's ``data`` exactly as the host does and return plain values (dicts, lists,
iterators), never Dify's own types: ``invoke_llm`` and ``invoke_tts`` are lazy iterators, the
others return the first payload. Plugin errors raise :class:`PluginInvokeError`.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterator
from typing import IO, Any

from dify_lambda.router.errors import InvocationError
from dify_lambda.router.events import Event, StreamEvent

__all__ = ["ModelMethods"]


def _rerank(action: str) -> Callable[..., dict[str, Any]]:
    """``invoke_rerank`` and ``invoke_multimodal_rerank``: the same fields, another action."""

    def rerank(
        self: ModelMethods,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        query: str | dict[str, Any],
        docs: list[Any],
        score_threshold: float | None = None,
        top_n: int | None = None,
    ) -> dict[str, Any]:
        fields = {"query": query, "docs": docs, "score_threshold": score_threshold, "top_n": top_n}
        data = self._model(provider, "rerank", model, credentials) | fields
        return self._result("rerank", tenant_id, user_id, plugin_id, action, data)

    rerank.__name__ = rerank.__qualname__ = action
    return rerank


class ModelMethods:
    """Mixin over :meth:`invoke`; see Dify ``api/core/plugin/impl/model.py`` for the host's side."""

    #: Implemented by :class:`~dify_lambda.router.client.Router`.
    invoke: Callable[..., Iterator[Event]]

    def _payloads(
        self, tenant_id: str | None, user_id: str | None, plugin_id: str, action: str, data: dict[str, Any]
    ) -> Iterator[Any]:
        for event in self.invoke(plugin_id, action, data, user_id=user_id or "", tenant_id=tenant_id):
            if isinstance(event, StreamEvent):
                yield event.data

    def _first(
        self, tenant_id: str | None, user_id: str | None, plugin_id: str, action: str, data: dict[str, Any]
    ) -> Any:
        payloads = self._payloads(tenant_id, user_id, plugin_id, action, data)
        try:
            return next(payloads, None)
        finally:
            payloads.close()  # type: ignore[attr-defined]

    def _result(
        self,
        what: str,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        action: str,
        data: dict[str, Any],
    ) -> dict[str, Any]:
        """The first payload, which must be an object."""
        result = self._first(tenant_id, user_id, plugin_id, action, data)
        if not isinstance(result, dict):
            raise InvocationError(f"Failed to invoke {what}: the plugin returned no result")
        return result

    @staticmethod
    def _model(provider: str, model_type: str, model: str, credentials: dict[str, Any]) -> dict[str, Any]:
        return {"provider": provider, "model_type": model_type, "model": model, "credentials": credentials}

    def get_model_schema(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model_type: str,
        model: str,
        credentials: dict[str, Any],
    ) -> dict[str, Any] | None:
        data = self._model(provider, model_type, model, credentials)
        result = self._first(tenant_id, user_id, plugin_id, "get_ai_model_schemas", data)
        return result.get("model_schema") if isinstance(result, dict) else None

    def validate_provider_credentials(
        self, tenant_id: str, user_id: str | None, plugin_id: str, provider: str, credentials: dict[str, Any]
    ) -> bool:
        data = {"provider": provider, "credentials": credentials}
        result = self._first(tenant_id, user_id, plugin_id, "validate_provider_credentials", data)
        return _validated(result, credentials)

    def validate_model_credentials(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model_type: str,
        model: str,
        credentials: dict[str, Any],
    ) -> bool:
        data = self._model(provider, model_type, model, credentials)
        result = self._first(tenant_id, user_id, plugin_id, "validate_model_credentials", data)
        return _validated(result, credentials)

    def invoke_llm(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        prompt_messages: list[dict[str, Any]],
        model_parameters: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        stop: list[str] | None = None,
        stream: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Lazy iterator of ``LLMResultChunk`` dicts (one chunk when ``stream`` is false)."""
        data = self._model(provider, "llm", model, credentials) | {
            "prompt_messages": prompt_messages,
            "model_parameters": model_parameters or {},
            "tools": tools,
            "stop": stop,
            "stream": stream,
        }
        return self._payloads(tenant_id, user_id, plugin_id, "invoke_llm", data)

    def get_llm_num_tokens(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model_type: str,
        model: str,
        credentials: dict[str, Any],
        prompt_messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> int:
        data = self._model(provider, model_type, model, credentials) | {
            "prompt_messages": prompt_messages,
            "tools": tools,
        }
        result = self._first(tenant_id, user_id, plugin_id, "get_llm_num_tokens", data)
        return int(result.get("num_tokens", 0)) if isinstance(result, dict) else 0

    def invoke_text_embedding(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        texts: list[str],
        input_type: str = "document",
    ) -> dict[str, Any]:
        """``TextEmbeddingResult`` dict; large inputs are sent in serial batches and merged."""
        data = self._model(provider, "text-embedding", model, credentials) | {
            "texts": texts,
            "input_type": input_type,
        }
        return self._result("text embedding", tenant_id, user_id, plugin_id, "invoke_text_embedding", data)

    def invoke_multimodal_embedding(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        documents: list[dict[str, Any]],
        input_type: str = "document",
    ) -> dict[str, Any]:
        data = self._model(provider, "text-embedding", model, credentials) | {
            "documents": documents,
            "input_type": input_type,
        }
        return self._result(
            "multimodal embedding", tenant_id, user_id, plugin_id, "invoke_multimodal_embedding", data
        )

    def get_text_embedding_num_tokens(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        texts: list[str],
    ) -> list[int]:
        data = self._model(provider, "text-embedding", model, credentials) | {"texts": texts}
        result = self._first(tenant_id, user_id, plugin_id, "get_text_embedding_num_tokens", data)
        return [int(n) for n in result.get("num_tokens", [])] if isinstance(result, dict) else []

    #: ``query`` is a string, ``docs`` a list of strings.
    invoke_rerank = _rerank("invoke_rerank")
    #: ``query`` and each of ``docs`` are ``{content, content_type}`` objects.
    invoke_multimodal_rerank = _rerank("invoke_multimodal_rerank")

    def invoke_tts(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        content_text: str,
        voice: str,
    ) -> Iterator[bytes]:
        """Lazy iterator of audio bytes (the plugin's hex chunks, decoded)."""
        data = self._model(provider, "tts", model, credentials) | {
            "tenant_id": tenant_id,
            "content_text": content_text,
            "voice": voice,
        }
        for payload in self._payloads(tenant_id, user_id, plugin_id, "invoke_tts", data):
            yield binascii.unhexlify(payload["result"])

    def get_tts_model_voices(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        language: str | None = None,
    ) -> list[dict[str, Any]]:
        data = self._model(provider, "tts", model, credentials) | {"language": language}
        result = self._first(tenant_id, user_id, plugin_id, "get_tts_model_voices", data)
        voices = result.get("voices", []) if isinstance(result, dict) else []
        return [{"name": v.get("name"), "value": v.get("value")} for v in voices]

    def invoke_speech2text(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        file: IO[bytes] | bytes,
    ) -> str:
        """Transcribe audio (bytes or a binary file); sent hex-encoded as the host does."""
        audio = file if isinstance(file, bytes) else file.read()
        data = self._model(provider, "speech2text", model, credentials) | {
            "file": binascii.hexlify(audio).decode()
        }
        result = self._result("speech to text", tenant_id, user_id, plugin_id, "invoke_speech2text", data)
        return str(result.get("result", ""))

    #: Dify's own name for :meth:`invoke_speech2text`.
    invoke_speech_to_text = invoke_speech2text

    def invoke_moderation(
        self,
        tenant_id: str,
        user_id: str | None,
        plugin_id: str,
        provider: str,
        model: str,
        credentials: dict[str, Any],
        text: str,
    ) -> bool:
        data = self._model(provider, "moderation", model, credentials) | {"text": text}
        result = self._result("moderation", tenant_id, user_id, plugin_id, "invoke_moderation", data)
        return bool(result.get("result"))


def _validated(result: Any, credentials: dict[str, Any]) -> bool:
    """The host overwrites the caller's credentials with what the plugin returns; do the same."""
    if not isinstance(result, dict):
        return False
    returned = result.get("credentials")
    if isinstance(returned, dict) and returned:
        credentials.update(returned)
    return bool(result.get("result"))
