"""The generic Lambda handler: loads one plugin per process and streams its answers.

Imports nothing from ``packaging``, ``router``, ``infra`` or the CLI: the Lambda artifact carries
this package (plus ``dify_lambda.errors`` and ``dify_lambda.wire``) alone.
"""

__all__: list[str] = []
