"""MockLab moderation: flags a text that contains one of a few listed words."""

from __future__ import annotations

from collections.abc import Mapping

from dify_plugin import ModerationModel
from dify_plugin.errors.model import InvokeError
from models.common import ERROR_MAPPING, check_invocable, raise_if_triggered, validate_model, words

FLAGGED_WORDS = frozenset({"bomb", "kill", "hate", "forbidden"})


class MockLabModerationModel(ModerationModel):
    def _invoke(self, model: str, credentials: dict, text: str, user: str | None = None) -> bool:
        """True when the text is flagged."""
        check_invocable(self, model, credentials)
        raise_if_triggered([text])
        return not FLAGGED_WORDS.isdisjoint(words(text))

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        validate_model(self, model, credentials)

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return ERROR_MAPPING
