"""dify_lambda.router."""

__all__: list[str] = []
