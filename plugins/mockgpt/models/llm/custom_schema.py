"""The schema MockGPT reports for a customizable model (any name, context size from credentials).

The polling model is offered here, not as a predefined model: a predefined model's features are in
every workspace's provider list, and Dify releases that do not know ``polling`` (1.12.1 and earlier)
fail to parse the whole list. A customizable model is only fetched when someone adds it.
"""

from __future__ import annotations

from decimal import Decimal

from dify_plugin.entities import I18nObject
from dify_plugin.entities.model import (
    AIModelEntity,
    FetchFrom,
    ModelFeature,
    ModelPropertyKey,
    ModelType,
    ParameterRule,
    ParameterType,
    PriceConfig,
)
from dify_plugin.entities.model.llm import LLMMode

#: The customizable model name that answers with polling (``start_polling`` / ``check_polling``).
POLLING_MODEL = "mockgpt-1-polling"
#: Its context size when the model credentials name none.
POLLING_CONTEXT_SIZE = 8192


def custom_model_schema(model: str, context_size: int, *, polling: bool = False) -> AIModelEntity:
    """Same parameters and prices as ``mockgpt-1``; ``max_tokens`` is capped by the context size."""
    return AIModelEntity(
        model=model,
        label=I18nObject(en_US=model),
        model_type=ModelType.LLM,
        features=[ModelFeature.POLLING] if polling else [ModelFeature.TOOL_CALL],
        fetch_from=FetchFrom.CUSTOMIZABLE_MODEL,
        model_properties={
            ModelPropertyKey.MODE: LLMMode.CHAT.value,
            ModelPropertyKey.CONTEXT_SIZE: context_size,
        },
        parameter_rules=[
            ParameterRule(
                name="temperature",
                use_template="temperature",
                label=I18nObject(en_US="Temperature"),
                type=ParameterType.FLOAT,
            ),
            ParameterRule(
                name="max_tokens",
                use_template="max_tokens",
                label=I18nObject(en_US="Max Tokens"),
                type=ParameterType.INT,
                min=1,
                max=context_size,
            ),
            ParameterRule(
                name="word_delay",
                label=I18nObject(en_US="Word delay (s)"),
                type=ParameterType.FLOAT,
                min=0,
                max=10,
                precision=3,
            ),
        ],
        pricing=PriceConfig(
            input=Decimal("0.5"), output=Decimal("1.5"), unit=Decimal("0.000001"), currency="USD"
        ),
    )
