"""The MockGPT chat model: canned replies streamed word by word, with real usage and pricing."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator, Mapping, Sequence
from typing import Literal

from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model import AIModelEntity
from dify_plugin.entities.model.llm import (
    LLMPollingResult,
    LLMPollingStatus,
    LLMResult,
    LLMResultChunk,
    LLMResultChunkDelta,
)
from dify_plugin.entities.model.message import (
    AssistantPromptMessage,
    PromptMessage,
    PromptMessageRole,
    PromptMessageTool,
)
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)
from models.llm.custom_schema import POLLING_CONTEXT_SIZE, POLLING_MODEL, custom_model_schema
from models.llm.replies import (
    CRASH_AFTER_WORDS,
    apply_stop,
    choose_reply,
    count_tokens,
    parse_control,
    split_words,
    word_delay,
)

API_KEY_PREFIX = "mock-"
#: Tokens charged per message on top of its text (role markers), like real chat models.
MESSAGE_OVERHEAD_TOKENS = 3
#: How many ``check_polling`` calls answer ``running`` before the result is ready.
POLLS_BEFORE_READY = 1

_EAGER_ERRORS: dict[str, type[Exception]] = {
    "ratelimit": InvokeRateLimitError,
    "badrequest": InvokeBadRequestError,
    "auth": InvokeAuthorizationError,
    "unavailable": InvokeServerUnavailableError,
    "connection": InvokeConnectionError,
    "fail": RuntimeError,
}


def check_api_key(credentials: Mapping[str, object]) -> None:
    """Accept any ``api_key`` that starts with ``mock-``; the message never echoes the key."""
    api_key = credentials.get("api_key")
    if not isinstance(api_key, str) or not api_key.startswith(API_KEY_PREFIX):
        raise CredentialsValidateFailedError(f"api_key must be a string starting with '{API_KEY_PREFIX}'")


def message_text(message: PromptMessage) -> str:
    """The text of a message: a plain string, or the text parts of a multi-part content."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(part.data for part in content if isinstance(getattr(part, "data", None), str))


def last_user_text(prompt_messages: Sequence[PromptMessage]) -> str:
    for message in reversed(prompt_messages):
        if message.role == PromptMessageRole.USER:
            return message_text(message)
    return ""


class MockGPTLargeLanguageModel(LargeLanguageModel):
    """Canned-reply chat model; control messages in ``models/llm/replies.py`` trigger errors."""

    def _invoke(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        model_parameters: dict,
        tools: list[PromptMessageTool] | None = None,
        stop: list[str] | None = None,
        stream: bool = True,
        user: str | None = None,
    ) -> LLMResult | Generator[LLMResultChunk, None, None]:
        # Everything that can fail before the first word fails here, eagerly, so the SDK maps it
        # through _invoke_error_mapping ("[models] Rate Limit Error, ...").
        self._check_invocable(model, credentials)
        prompt = last_user_text(prompt_messages)
        control = parse_control(prompt)
        crash = control == ("raise", "crash")
        if control is not None and control[0] == "raise" and not crash:
            self._raise_for(control[1])
        message, finish_reason = self._answer(prompt, model_parameters, tools, stop)
        delay = word_delay(model_parameters.get("word_delay"))
        prompt_tokens = self.get_num_tokens(model, credentials, prompt_messages, tools)
        if stream:
            return self._stream(model, credentials, message, finish_reason, prompt_tokens, delay, crash)
        pieces = split_words(str(message.content or ""))
        if delay:
            time.sleep(delay * len(pieces))
        if crash:
            raise RuntimeError("simulated crash (raise:crash)")
        usage = self._calc_response_usage(
            model, credentials, prompt_tokens, count_tokens(str(message.content or ""))
        )
        return LLMResult(model=model, message=message, usage=usage)

    def _stream(
        self,
        model: str,
        credentials: dict,
        message: AssistantPromptMessage,
        finish_reason: str,
        prompt_tokens: int,
        delay: float,
        crash: bool,
    ) -> Generator[LLMResultChunk, None, None]:
        text = str(message.content or "")
        pieces = split_words(text)
        for index, piece in enumerate(pieces):
            if crash and index == CRASH_AFTER_WORDS:
                # A plain exception after the first chunks: the SDK does not map it (mid-stream).
                raise RuntimeError(f"simulated crash after {CRASH_AFTER_WORDS} words (raise:crash)")
            if delay:
                time.sleep(delay)
            yield LLMResultChunk(
                model=model,
                delta=LLMResultChunkDelta(index=index, message=AssistantPromptMessage(content=piece)),
            )
        usage = self._calc_response_usage(model, credentials, prompt_tokens, count_tokens(text))
        yield LLMResultChunk(
            model=model,
            delta=LLMResultChunkDelta(
                index=len(pieces),
                message=AssistantPromptMessage(content="", tool_calls=message.tool_calls),
                usage=usage,
                finish_reason=finish_reason,
            ),
        )

    def _answer(
        self,
        prompt: str,
        model_parameters: Mapping[str, object],
        tools: Sequence[PromptMessageTool] | None,
        stop: Sequence[str] | None,
    ) -> tuple[AssistantPromptMessage, str]:
        """The full assistant message and its finish reason (``stop``, ``length``, ``tool_calls``)."""
        control = parse_control(prompt)
        if control is not None and control[0] == "tool":
            name = control[1]
            if name not in {tool.name for tool in tools or ()}:
                raise InvokeBadRequestError(f"tool '{name}' was not offered in this request")
            call_id = "call_" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
            call = AssistantPromptMessage.ToolCall(
                id=call_id,
                type="function",
                function=AssistantPromptMessage.ToolCall.ToolCallFunction(
                    name=name, arguments=json.dumps({"prompt_tokens": count_tokens(prompt)})
                ),
            )
            return AssistantPromptMessage(content="", tool_calls=[call]), "tool_calls"
        reply, _ = apply_stop(choose_reply(prompt), stop)
        finish_reason = "stop"
        max_tokens = model_parameters.get("max_tokens")
        if isinstance(max_tokens, int) and count_tokens(reply) > max_tokens:
            kept: list[str] = []
            for piece in split_words(reply):
                if count_tokens("".join([*kept, piece])) > max_tokens:
                    break
                kept.append(piece)
            reply, finish_reason = "".join(kept), "length"
        return AssistantPromptMessage(content=reply), finish_reason

    def _raise_for(self, kind: str) -> None:
        error = _EAGER_ERRORS.get(kind)
        if error is None:
            raise InvokeBadRequestError(f"unknown error kind '{kind}' in raise:<kind>")
        raise error(f"simulated {kind} (raise:{kind})")

    def _check_invocable(self, model: str, credentials: Mapping[str, object]) -> None:
        try:
            check_api_key(credentials)
        except CredentialsValidateFailedError as exc:
            raise InvokeAuthorizationError(str(exc)) from None
        if self.get_model_schema(model, credentials) is None:
            raise InvokeBadRequestError(f"model '{model}' is not offered by mockgpt")

    # --- polling (SDK 0.10: the customizable model mockgpt-1-polling, see custom_schema) -----------

    def _start_polling(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        model_parameters: dict,
        tools: list[PromptMessageTool] | None = None,
        stop: list[str] | None = None,
        stream: Literal[False] = False,
        user: str | None = None,
        *,
        json_schema: dict | None = None,
    ) -> LLMPollingResult:
        del stream, user, json_schema
        self._check_invocable(model, credentials)
        prompt = last_user_text(prompt_messages)
        control = parse_control(prompt)
        # The whole job travels in plugin_state: a Lambda-hosted plugin keeps nothing between calls.
        state: dict[str, object] = {
            "job": hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16],
            "polls_remaining": POLLS_BEFORE_READY,
            "prompt_tokens": self.get_num_tokens(model, credentials, prompt_messages, tools),
        }
        if control == ("raise", "fail"):
            state["error"] = "simulated failure (raise:fail)"
        elif control is not None and control[0] == "raise":
            self._raise_for(control[1])
        else:
            message, _ = self._answer(prompt, model_parameters, tools, stop)
            state["reply"] = str(message.content or "")
        return LLMPollingResult(
            status=LLMPollingStatus.RUNNING, plugin_state=state, next_check_after_seconds=1
        )

    def _check_polling(
        self,
        model: str,
        credentials: dict,
        plugin_state: dict,
        user: str | None = None,
    ) -> LLMPollingResult:
        del user
        self._check_invocable(model, credentials)
        remaining = plugin_state.get("polls_remaining", 0)
        if not isinstance(remaining, int):
            raise InvokeBadRequestError("plugin_state.polls_remaining must be an integer")
        if remaining > 0:
            state = {**plugin_state, "polls_remaining": remaining - 1}
            return LLMPollingResult(
                status=LLMPollingStatus.RUNNING, plugin_state=state, next_check_after_seconds=1
            )
        error = plugin_state.get("error")
        if isinstance(error, str) and error:
            return LLMPollingResult(status=LLMPollingStatus.FAILED, error=error)
        reply = plugin_state.get("reply")
        prompt_tokens = plugin_state.get("prompt_tokens", 0)
        if not isinstance(reply, str) or not isinstance(prompt_tokens, int):
            raise InvokeBadRequestError("plugin_state needs a string 'reply' and an integer 'prompt_tokens'")
        usage = self._calc_response_usage(model, credentials, prompt_tokens, count_tokens(reply))
        result = LLMResult(model=model, message=AssistantPromptMessage(content=reply), usage=usage)
        return LLMPollingResult(status=LLMPollingStatus.SUCCEEDED, result=result)

    # --- counting, credentials, schema ----------------------------------------------------------

    def get_num_tokens(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        tools: list[PromptMessageTool] | None = None,
    ) -> int:
        """Count locally (never the SDK's gpt2 fallback, which downloads a tokenizer)."""
        del model, credentials
        total = sum(count_tokens(message_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in prompt_messages)
        for tool in tools or ():
            total += count_tokens(f"{tool.name} {tool.description} {json.dumps(tool.parameters)}")
        return total

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        check_api_key(credentials)
        if "context_size" in credentials:
            context_size = str(credentials["context_size"])
            if not context_size.isdigit() or int(context_size) <= 0:
                raise CredentialsValidateFailedError("context_size must be a positive integer")
        if self.get_model_schema(model, credentials) is None:
            raise CredentialsValidateFailedError(f"model '{model}' is not offered by mockgpt")

    def get_customizable_model_schema(self, model: str, credentials: Mapping) -> AIModelEntity | None:
        """Any model name works once the model credentials carry a positive ``context_size``;
        ``mockgpt-1-polling`` always does (the polling model, default context size)."""
        raw = str(credentials.get("context_size", ""))
        valid = raw.isdigit() and int(raw) > 0
        if model == POLLING_MODEL:
            return custom_model_schema(model, int(raw) if valid else POLLING_CONTEXT_SIZE, polling=True)
        if not valid:
            return None
        return custom_model_schema(model, int(raw))

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        # The model raises the SDK's own invoke errors; map each to itself so the SDK adds the
        # "[models] <kind>, " prefix exactly as for a real provider.
        return {
            InvokeConnectionError: [InvokeConnectionError],
            InvokeServerUnavailableError: [InvokeServerUnavailableError],
            InvokeRateLimitError: [InvokeRateLimitError],
            InvokeAuthorizationError: [InvokeAuthorizationError],
            InvokeBadRequestError: [InvokeBadRequestError, ValueError],
        }
