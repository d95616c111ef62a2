from dify_plugin import OAICompatEmbeddingModel


class OaiCompatFixtureEmbedding(OAICompatEmbeddingModel):
    pass
