from dify_plugin import ModelProvider


class TokenGPTProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        return None
