"""MockLab TTS: a small valid WAV per request (see models/wavcodec.py), sent in several chunks."""

from __future__ import annotations

from collections.abc import Generator, Mapping

from dify_plugin import TTSModel
from dify_plugin.errors.model import InvokeBadRequestError, InvokeError
from models import wavcodec
from models.common import ERROR_MAPPING, check_invocable, raise_if_triggered, validate_model

CHUNK_BYTES = 4096
#: Base pitch per voice; unknown voices fall back to the model's default voice.
VOICE_PITCH_HZ = {"alice": 440.0, "bob": 220.0, "chloe": 330.0}


class MockLabTTSModel(TTSModel):
    def _invoke(
        self,
        model: str,
        tenant_id: str,
        credentials: dict,
        content_text: str,
        voice: str,
        user: str | None = None,
    ) -> Generator[bytes, None, None]:
        # Checked before the generator starts, so the SDK maps these errors like any other.
        check_invocable(self, model, credentials)
        raise_if_triggered([content_text])
        limit = self._get_model_word_limit(model, credentials)
        if limit is not None and len(content_text) > limit:
            raise InvokeBadRequestError(f"content_text has {len(content_text)} characters, limit {limit}")
        if voice not in VOICE_PITCH_HZ:
            voice = str(self._get_model_default_voice(model, credentials) or "alice")
        audio = wavcodec.encode(content_text, VOICE_PITCH_HZ.get(voice, 440.0))
        return self._chunks(audio)

    @staticmethod
    def _chunks(audio: bytes) -> Generator[bytes, None, None]:
        for start in range(0, len(audio), CHUNK_BYTES):
            yield audio[start : start + CHUNK_BYTES]

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        validate_model(self, model, credentials)

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return ERROR_MAPPING
