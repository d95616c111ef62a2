"""The MockLab provider: credentials are valid when ``api_key`` starts with ``mock-``."""

from __future__ import annotations

from dify_plugin import ModelProvider
from models.common import check_api_key


class MockLabProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        check_api_key(credentials)
