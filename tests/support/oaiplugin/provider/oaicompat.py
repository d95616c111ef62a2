"""Provider of the OpenAI-compatible fixture (its models subclass the SDK's OAICompat bases)."""

from dify_plugin import ModelProvider


class OaiCompatFixtureProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        pass
