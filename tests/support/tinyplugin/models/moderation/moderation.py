from dify_plugin import ModerationModel
from models.common import ERROR_MAPPING, check_credentials


class TinyModeration(ModerationModel):
    def _invoke(self, model: str, credentials: dict, text: str, user: str | None = None) -> bool:
        return "forbidden" in text

    def validate_credentials(self, model: str, credentials: dict) -> None:
        check_credentials(credentials)

    @property
    def _invoke_error_mapping(self):
        return ERROR_MAPPING
