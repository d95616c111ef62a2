"""MockLab speech2text: reads back the text MockLab's TTS embeds in its WAV, else counts bytes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

from dify_plugin import Speech2TextModel
from dify_plugin.errors.model import InvokeError
from models import wavcodec
from models.common import ERROR_MAPPING, check_invocable, raise_if_triggered, validate_model


class MockLabSpeech2TextModel(Speech2TextModel):
    def _invoke(self, model: str, credentials: dict, file: IO[bytes], user: str | None = None) -> str:
        check_invocable(self, model, credentials)
        audio = file.read()
        text = wavcodec.decode_text(audio)
        if text is None:
            return f"{len(audio)} bytes of audio"
        raise_if_triggered([text])
        return text

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        validate_model(self, model, credentials)

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return ERROR_MAPPING
