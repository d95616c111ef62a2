"""A benchmark LLM shaped like a hosted-model plugin, with no network.

It imports what such plugins import at module level (the ``openai`` client, ``httpx``, ``tiktoken``,
``numpy``), counts tokens with tiktoken's gpt2 encoding, and streams its reply through a real
``openai.OpenAI`` client whose ``httpx`` transport answers locally with a canned server-sent-event
stream, so the client's request building and stream parsing run as they would against an API.
"""

import json
import os
from collections.abc import Generator

import httpx
import numpy as np
import openai
import tiktoken
from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta
from dify_plugin.entities.model.message import AssistantPromptMessage, PromptMessage, PromptMessageTool
from dify_plugin.errors.model import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

REPLY = (
    "Cold starts are the time between a request arriving and the first byte leaving; "
    "what a function imports before it can answer is most of it."
)


def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("gpt2")


def _canned_stream(request: httpx.Request) -> httpx.Response:
    """Answer a chat-completions request with the reply split into TOKENGPT_CHUNKS SSE events."""
    payload = json.loads(request.content)
    tokens = _encoding().encode(REPLY)
    parts = int(os.environ.get("TOKENGPT_CHUNKS", "8"))
    lines = []
    for piece in np.array_split(np.asarray(tokens), parts):
        chunk = {
            "id": "chatcmpl-tokengpt",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": payload["model"],
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": _encoding().decode(piece.tolist())},
                    "finish_reason": None,
                }
            ],
        }
        lines.append(f"data: {json.dumps(chunk)}\n\n")
    lines.append("data: [DONE]\n\n")
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content="".join(lines).encode())


class TokenGPT(LargeLanguageModel):
    def _client(self, credentials: dict) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=credentials.get("api_key") or "tokengpt",
            base_url="http://tokengpt.invalid/v1",
            http_client=httpx.Client(transport=httpx.MockTransport(_canned_stream)),
            max_retries=0,
        )

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
        messages = [{"role": m.role.value, "content": str(m.content or "")} for m in prompt_messages]
        prompt_tokens = self.get_num_tokens(model, credentials, prompt_messages, tools)
        response = self._client(credentials).chat.completions.create(
            model=model, messages=messages, stream=True, **model_parameters
        )

        def gen() -> Generator[LLMResultChunk, None, None]:
            text = ""
            for index, chunk in enumerate(response):
                delta = chunk.choices[0].delta.content or ""
                text += delta
                yield LLMResultChunk(
                    model=model,
                    prompt_messages=prompt_messages,
                    delta=LLMResultChunkDelta(index=index, message=AssistantPromptMessage(content=delta)),
                )
            completion_tokens = len(_encoding().encode(text))
            yield LLMResultChunk(
                model=model,
                prompt_messages=prompt_messages,
                delta=LLMResultChunkDelta(
                    index=index + 1,
                    message=AssistantPromptMessage(content=""),
                    usage=self._calc_response_usage(model, credentials, prompt_tokens, completion_tokens),
                    finish_reason="stop",
                ),
            )

        return gen()

    def get_num_tokens(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        tools: list[PromptMessageTool] | None = None,
    ) -> int:
        encoding = _encoding()
        counts = np.fromiter(
            (len(encoding.encode(str(m.content or ""))) + 4 for m in prompt_messages), dtype=np.int64
        )
        return int(counts.sum()) + 3

    def validate_credentials(self, model: str, credentials: dict) -> None:
        return None

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return {
            InvokeConnectionError: [openai.APIConnectionError, httpx.TransportError],
            InvokeServerUnavailableError: [openai.InternalServerError],
            InvokeRateLimitError: [openai.RateLimitError],
            InvokeAuthorizationError: [openai.AuthenticationError, openai.PermissionDeniedError],
            InvokeBadRequestError: [openai.BadRequestError],
        }


__all__ = ["TokenGPT"]
