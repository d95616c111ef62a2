"""dify_lambda.packaging."""

__all__: list[str] = []
