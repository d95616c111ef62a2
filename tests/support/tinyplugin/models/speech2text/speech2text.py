from typing import IO

from dify_plugin import Speech2TextModel
from models.common import ERROR_MAPPING, check_credentials


class TinySpeech2Text(Speech2TextModel):
    def _invoke(self, model: str, credentials: dict, file: IO[bytes], user: str | None = None) -> str:
        data = file.read()
        return f"heard {len(data)} bytes"

    def validate_credentials(self, model: str, credentials: dict) -> None:
        check_credentials(credentials)

    @property
    def _invoke_error_mapping(self):
        return ERROR_MAPPING
