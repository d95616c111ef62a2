"""The serverless connector: the HTTP API an unmodified Dify plugin daemon calls (docs/connector.md)."""
