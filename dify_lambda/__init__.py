"""dify-lambda: run Dify model plugins on AWS Lambda.

Parts (see docs/architecture.md):

- ``dify_lambda.packaging``: read, write, verify and build ``.difypkg`` packages.
- ``dify_lambda.handlers``: the generic Lambda handler that loads a plugin and streams its answers.
- ``dify_lambda.router``: the client that dispatches Dify's model calls straight to function URLs.
- ``dify_lambda.infra``: deploy with boto3, publish routes, and the serverless connector.

This module stays import-light on purpose: the Lambda artifact ships ``dify_lambda`` with only
``handlers``, ``errors`` and ``wire``, and the router runs inside Dify's API process.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
