"""Streams the last message back; counts tokens with numpy (a native extension loaded at init)."""

from collections.abc import Generator

import numpy as np
from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta
from dify_plugin.entities.model.message import AssistantPromptMessage, PromptMessage, PromptMessageTool


def _text(prompt_messages: list[PromptMessage]) -> str:
    content = prompt_messages[-1].content if prompt_messages else ""
    return content if isinstance(content, str) else ""


def count_tokens(text: str) -> int:
    return int(np.asarray([len(w) for w in text.split()], dtype=np.int64).size)


class FixtureLLM(LargeLanguageModel):
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
        text = _text(prompt_messages)
        words = text.split() or ["(empty)"]
        usage = self._calc_response_usage(model, credentials, count_tokens(text), len(words))
        if not stream:
            message = AssistantPromptMessage(content=" ".join(words))
            return LLMResult(model=model, prompt_messages=prompt_messages, message=message, usage=usage)
        return self._stream(model, prompt_messages, words, usage)

    def _stream(self, model, prompt_messages, words, usage) -> Generator[LLMResultChunk, None, None]:
        for index, word in enumerate(words):
            last = index == len(words) - 1
            yield LLMResultChunk(
                model=model,
                prompt_messages=prompt_messages,
                delta=LLMResultChunkDelta(
                    index=index,
                    message=AssistantPromptMessage(content=word + ("" if last else " ")),
                    usage=usage if last else None,
                    finish_reason="stop" if last else None,
                ),
            )

    def get_num_tokens(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        tools: list[PromptMessageTool] | None = None,
    ) -> int:
        return sum(count_tokens(str(m.content or "")) for m in prompt_messages)

    def validate_credentials(self, model: str, credentials: dict) -> None:
        pass

    @property
    def _invoke_error_mapping(self) -> dict:
        return {}
