from collections.abc import Generator

from dify_plugin import TTSModel
from models.common import ERROR_MAPPING, check_credentials


class TinyTTS(TTSModel):
    def _invoke(
        self,
        model: str,
        tenant_id: str,
        credentials: dict,
        content_text: str,
        voice: str,
        user: str | None = None,
    ) -> Generator[bytes, None, None]:
        # One fake "audio" chunk per word, so the stream has several events.
        for word in content_text.split():
            yield b"AUDIO:" + word.encode()

    def validate_credentials(self, model: str, credentials: dict, user: str | None = None) -> None:
        check_credentials(credentials)

    @property
    def _invoke_error_mapping(self):
        return ERROR_MAPPING
