"""MockLab rerank: the share of query words found in each document (deterministic, lexical)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from dify_plugin import RerankModel
from dify_plugin.entities.model.rerank import MultiModalRerankResult, RerankDocument, RerankResult
from dify_plugin.entities.model.text_embedding import MultiModalContent, MultiModalContentType
from dify_plugin.errors.model import InvokeError
from models.common import ERROR_MAPPING, check_invocable, raise_if_triggered, validate_model, words


def _terms(content: str, content_type: MultiModalContentType = MultiModalContentType.TEXT) -> set[str]:
    if content_type == MultiModalContentType.IMAGE:
        # An image matches only an identical image.
        return {"image:" + hashlib.sha256(content.encode("utf-8")).hexdigest()}
    return set(words(content))


def overlap_score(query_terms: set[str], doc_terms: set[str]) -> float:
    """|query ∩ doc| / |query|, rounded so both servers print the same float."""
    if not query_terms:
        return 0.0
    return round(len(query_terms & doc_terms) / len(query_terms), 6)


def rank(
    query_terms: set[str],
    docs: Sequence[tuple[str, set[str]]],
    score_threshold: float | None,
    top_n: int | None,
) -> list[RerankDocument]:
    """Best first (ties keep input order); drop scores under the threshold; keep ``top_n``.

    ``top_n`` and ``score_threshold`` of 0 mean "not set": the daemon sends 0 for both when the
    host left them empty.
    """
    scored = [
        RerankDocument(index=index, text=text, score=overlap_score(query_terms, terms))
        for index, (text, terms) in enumerate(docs)
    ]
    scored.sort(key=lambda doc: (-doc.score, doc.index))
    if score_threshold:
        scored = [doc for doc in scored if doc.score >= score_threshold]
    if top_n and top_n > 0:
        scored = scored[:top_n]
    return scored


class MockLabRerankModel(RerankModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        query: str,
        docs: list[str],
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str | None = None,
    ) -> RerankResult:
        check_invocable(self, model, credentials)
        raise_if_triggered([query])
        ranked = rank(_terms(query), [(doc, _terms(doc)) for doc in docs], score_threshold, top_n)
        return RerankResult(model=model, docs=ranked)

    def _invoke_multimodal(
        self,
        model: str,
        credentials: dict,
        query: MultiModalContent,
        docs: Sequence[MultiModalContent],
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str | None = None,
    ) -> MultiModalRerankResult:
        check_invocable(self, model, credentials)
        if query.content_type == MultiModalContentType.TEXT:
            raise_if_triggered([query.content])
        candidates = [(doc.content, _terms(doc.content, doc.content_type)) for doc in docs]
        ranked = rank(_terms(query.content, query.content_type), candidates, score_threshold, top_n)
        return MultiModalRerankResult(model=model, docs=ranked)

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        validate_model(self, model, credentials)

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return ERROR_MAPPING
