"""The MockGPT provider: credentials are valid when ``api_key`` starts with ``mock-``."""

from __future__ import annotations

from dify_plugin import ModelProvider
from dify_plugin.entities.model import ModelType
from models.llm.llm import check_api_key


class MockGPTProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        """Check the key locally, then once more through the model, as real providers do."""
        check_api_key(credentials)
        self.get_model_instance(ModelType.LLM).validate_credentials("mockgpt-1", credentials)
