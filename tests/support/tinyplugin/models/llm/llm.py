"""Echo LLM: streams the last user message back word by word.

Magic prompts drive the error cases: ``boom`` raises before the first chunk, ``late boom`` after
one chunk, ``ratelimit`` raises a mapped rate-limit error. ``gate:<path>`` yields one chunk, then
waits until the file ``<path>`` exists before yielding the last one (tests incremental delivery
without timing assumptions).
"""

import time
from collections.abc import Generator
from pathlib import Path

from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta
from dify_plugin.entities.model.message import AssistantPromptMessage, PromptMessage, PromptMessageTool
from models.common import ERROR_MAPPING, RateLimited, check_credentials


def _text(prompt_messages: list[PromptMessage]) -> str:
    content = prompt_messages[-1].content if prompt_messages else ""
    return content if isinstance(content, str) else ""


class TinyLLM(LargeLanguageModel):
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
        if text.startswith("gate:"):
            return self._gated(model, Path(text[len("gate:") :]))
        if text == "boom":
            raise ValueError("boom requested")
        if text == "ratelimit":
            raise RateLimited("slow down")
        words = text.split()
        usage = self._calc_response_usage(model, credentials, len(words), len(words))
        if not stream:
            return LLMResult(
                model=model,
                prompt_messages=prompt_messages,
                message=AssistantPromptMessage(content=text),
                usage=usage,
            )
        return self._stream(model, prompt_messages, words, usage, text == "late boom")

    def _stream(
        self, model, prompt_messages, words, usage, late_boom
    ) -> Generator[LLMResultChunk, None, None]:
        for index, word in enumerate(words):
            if late_boom and index == 1:
                raise ValueError("late boom requested")
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

    def _gated(self, model: str, gate: Path) -> Generator[LLMResultChunk, None, None]:
        yield self._chunk(model, 0, "waiting ")
        deadline = time.monotonic() + 60
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield self._chunk(model, 1, "opened" if gate.exists() else "timed-out")

    @staticmethod
    def _chunk(model: str, index: int, text: str) -> LLMResultChunk:
        return LLMResultChunk(
            model=model,
            prompt_messages=[],
            delta=LLMResultChunkDelta(index=index, message=AssistantPromptMessage(content=text)),
        )

    def get_num_tokens(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        tools: list[PromptMessageTool] | None = None,
    ) -> int:
        return sum(len(str(m.content or "").split()) for m in prompt_messages)

    def validate_credentials(self, model: str, credentials: dict) -> None:
        check_credentials(credentials)

    @property
    def _invoke_error_mapping(self):
        return ERROR_MAPPING
