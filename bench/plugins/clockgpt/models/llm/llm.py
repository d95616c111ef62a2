"""Yields CLOCKGPT_TICKS chunks, CLOCKGPT_INTERVAL seconds apart, each carrying time.time_ns() at yield."""

import os
import time
from collections.abc import Generator

from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta
from dify_plugin.entities.model.message import AssistantPromptMessage, PromptMessage, PromptMessageTool
from dify_plugin.errors.model import InvokeError


class ClockGPT(LargeLanguageModel):
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
        ticks = int(os.environ.get("CLOCKGPT_TICKS", "20"))
        interval = float(os.environ.get("CLOCKGPT_INTERVAL", "0.01"))

        def gen() -> Generator[LLMResultChunk, None, None]:
            for i in range(ticks):
                time.sleep(interval)
                yield LLMResultChunk(
                    model=model,
                    delta=LLMResultChunkDelta(
                        index=i, message=AssistantPromptMessage(content=str(time.time_ns()))
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
        return 1

    def validate_credentials(self, model: str, credentials: dict) -> None:
        return None

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return {}
