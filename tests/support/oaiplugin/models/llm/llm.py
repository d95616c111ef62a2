from dify_plugin import OAICompatLargeLanguageModel


class OaiCompatFixtureLLM(OAICompatLargeLanguageModel):
    pass
