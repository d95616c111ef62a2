"""MockLab embeddings: deterministic 64-dimension unit vectors from hashed words (no network)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from collections.abc import Mapping

from dify_plugin import TextEmbeddingModel
from dify_plugin.entities.model import EmbeddingInputType, PriceType
from dify_plugin.entities.model.text_embedding import (
    EmbeddingUsage,
    MultiModalContent,
    MultiModalContentType,
    MultiModalEmbeddingResult,
    TextEmbeddingResult,
)
from dify_plugin.errors.model import InvokeBadRequestError, InvokeError
from models.common import (
    ERROR_MAPPING,
    check_invocable,
    count_tokens,
    raise_if_triggered,
    validate_model,
    words,
)

DIMENSIONS = 64
#: Tokens charged for one image in a multimodal request.
IMAGE_TOKENS = 64
#: Weight of the query marker: queries and documents of the same text differ, yet stay close.
QUERY_MARKER = 0.25


def _normalized(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector]


def _bucket(token: bytes) -> tuple[int, float]:
    digest = hashlib.sha256(token).digest()
    return int.from_bytes(digest[:4], "big") % DIMENSIONS, 1.0 if digest[4] & 1 else -1.0


def embed_text(text: str, input_type: EmbeddingInputType) -> list[float]:
    """Feature-hash the words; a query gets an extra marker on dimension 0 (asymmetric model)."""
    vector = [0.0] * DIMENSIONS
    for word in words(text) or [text]:
        index, sign = _bucket(word.encode("utf-8"))
        vector[index] += sign
    if not any(vector):
        # The words cancelled each other out: fall back to the text's own bucket.
        index, sign = _bucket(b"\0" + text.encode("utf-8"))
        vector[index] = sign
    vector = _normalized(vector)
    if input_type == EmbeddingInputType.QUERY:
        vector[0] += QUERY_MARKER
        vector = _normalized(vector)
    return vector


def embed_bytes(data: bytes) -> list[float]:
    """An image vector: a SHA-256 stream of the bytes mapped to [-1, 1] and normalized."""
    stream = b"".join(hashlib.sha256(data + bytes([i])).digest() for i in range(2))
    return _normalized([(byte - 127.5) / 127.5 for byte in stream[:DIMENSIONS]])


def image_bytes(content: str) -> bytes:
    """Decode base64 image content (a data URL prefix is allowed); other strings hash as text."""
    payload = content.split(",", 1)[1] if content.startswith("data:") and "," in content else content
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return content.encode("utf-8")


class MockLabTextEmbeddingModel(TextEmbeddingModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        texts: list[str],
        user: str | None = None,
        input_type: EmbeddingInputType = EmbeddingInputType.DOCUMENT,
    ) -> TextEmbeddingResult:
        check_invocable(self, model, credentials)
        raise_if_triggered(texts)
        self._check_batch(model, credentials, len(texts))
        embeddings = [embed_text(text, input_type) for text in texts]
        tokens = sum(self.get_num_tokens(model, credentials, texts))
        return TextEmbeddingResult(
            model=model, embeddings=embeddings, usage=self._usage(model, credentials, tokens)
        )

    def _invoke_multimodal(
        self,
        model: str,
        credentials: dict,
        documents: list[MultiModalContent],
        user: str | None = None,
        input_type: EmbeddingInputType = EmbeddingInputType.DOCUMENT,
    ) -> MultiModalEmbeddingResult:
        check_invocable(self, model, credentials)
        raise_if_triggered(d.content for d in documents if d.content_type == MultiModalContentType.TEXT)
        self._check_batch(model, credentials, len(documents))
        embeddings: list[list[float]] = []
        tokens = 0
        for document in documents:
            if document.content_type == MultiModalContentType.IMAGE:
                embeddings.append(embed_bytes(image_bytes(document.content)))
                tokens += IMAGE_TOKENS
            else:
                embeddings.append(embed_text(document.content, input_type))
                tokens += count_tokens(document.content)
        return MultiModalEmbeddingResult(
            model=model, embeddings=embeddings, usage=self._usage(model, credentials, tokens)
        )

    def get_num_tokens(self, model: str, credentials: dict, texts: list[str]) -> list[int]:
        """Count locally, one number per text."""
        del model, credentials
        return [count_tokens(text) for text in texts]

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        validate_model(self, model, credentials)

    def _check_batch(self, model: str, credentials: dict, size: int) -> None:
        limit = self._get_max_chunks(model, credentials)
        if size > limit:
            raise InvokeBadRequestError(f"at most {limit} inputs per request, got {size}")

    def _usage(self, model: str, credentials: dict, tokens: int) -> EmbeddingUsage:
        price = self.get_price(
            model=model, credentials=credentials, price_type=PriceType.INPUT, tokens=tokens
        )
        return EmbeddingUsage(
            tokens=tokens,
            total_tokens=tokens,
            unit_price=price.unit_price,
            price_unit=price.unit,
            total_price=price.total_amount,
            currency=price.currency,
            latency=time.perf_counter() - self.started_at,
        )

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return ERROR_MAPPING
