"""dify_lambda.infra."""

__all__: list[str] = []
