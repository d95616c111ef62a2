from dify_plugin import TextEmbeddingModel
from dify_plugin.entities.model import EmbeddingInputType, PriceType
from dify_plugin.entities.model.text_embedding import EmbeddingUsage, TextEmbeddingResult
from models.common import ERROR_MAPPING, check_credentials


class TinyEmbedding(TextEmbeddingModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        texts: list[str],
        user: str | None = None,
        input_type: EmbeddingInputType = EmbeddingInputType.DOCUMENT,
    ) -> TextEmbeddingResult:
        sign = -1.0 if input_type == EmbeddingInputType.QUERY else 1.0
        embeddings = [[sign * len(t), float(len(t.split())), 0.5] for t in texts]
        tokens = sum(len(t.split()) for t in texts)
        price = self.get_price(model, credentials, PriceType.INPUT, tokens)
        usage = EmbeddingUsage(
            tokens=tokens,
            total_tokens=tokens,
            unit_price=price.unit_price,
            price_unit=price.unit,
            total_price=price.total_amount,
            currency=price.currency,
            latency=0.0,
        )
        return TextEmbeddingResult(model=model, embeddings=embeddings, usage=usage)

    def get_num_tokens(self, model: str, credentials: dict, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def validate_credentials(self, model: str, credentials: dict) -> None:
        check_credentials(credentials)

    @property
    def _invoke_error_mapping(self):
        return ERROR_MAPPING
