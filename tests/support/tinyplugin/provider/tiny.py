from dify_plugin import ModelProvider
from dify_plugin.errors.model import CredentialsValidateFailedError


class TinyProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        if not str(credentials.get("api_key", "")).startswith("tiny-"):
            raise CredentialsValidateFailedError("api_key must start with tiny-")
