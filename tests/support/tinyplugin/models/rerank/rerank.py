from dify_plugin import RerankModel
from dify_plugin.entities.model.rerank import RerankDocument, RerankResult
from models.common import ERROR_MAPPING, check_credentials


class TinyRerank(RerankModel):
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
        words = set(query.split())
        scored = [
            RerankDocument(index=i, text=d, score=len(words & set(d.split())) / max(len(words), 1))
            for i, d in enumerate(docs)
        ]
        scored.sort(key=lambda d: d.score, reverse=True)
        if score_threshold is not None:
            scored = [d for d in scored if d.score >= score_threshold]
        return RerankResult(model=model, docs=scored[:top_n] if top_n else scored)

    def validate_credentials(self, model: str, credentials: dict) -> None:
        check_credentials(credentials)

    @property
    def _invoke_error_mapping(self):
        return ERROR_MAPPING
