from dify_plugin import ModelProvider


class FixtureProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        pass
