from dify_plugin import ModelProvider


class ClockGPTProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        return None
