"""The shared request catalogue: named requests for every model action of the two demo plugins.

Each :class:`Case` is one request (the ``data`` fields of the envelope, without ``user_id``,
``type`` and ``action``) plus what the SDK answers: ``ok`` (stream messages, then ``end``),
``plugin_error`` (an ``error`` message, then ``end``; with ``partial`` some stream messages come
first) or ``end_only`` (just ``end``, e.g. an unknown action). The conformance suite sends each case
to the SDK's server and to the dify-lambda handler and compares the event lines (after
:func:`strip_volatile`); router tests and benchmarks reuse the cases.

Cases set ``word_delay`` to 0 unless they are about streaming timing (``timing=True``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dify_lambda.wire import build_envelope

PluginName = Literal["mockgpt", "mocklab", "tiny"]
Expect = Literal["ok", "plugin_error", "end_only"]

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = ROOT / "plugins"
#: ``author/name`` of each demo plugin (what the host sends as ``X-Plugin-ID``).
PLUGIN_IDS: dict[str, str] = {
    "mockgpt": "dify-lambda/mockgpt",
    "mocklab": "dify-lambda/mocklab",
    "tiny": "dify-lambda-tests/tiny",
}
PROVIDERS: dict[str, str] = {"mockgpt": "mockgpt", "mocklab": "mocklab", "tiny": "tiny"}
#: Where each plugin's source lives: the demo plugins, and the test plugin that loads on every
#: supported SDK release (the demo plugins use 0.10-only features: polling, multimodal models).
PLUGIN_DIRS: dict[str, Path] = {
    "mockgpt": PLUGINS_DIR / "mockgpt",
    "mocklab": PLUGINS_DIR / "mocklab",
    "tiny": ROOT / "tests" / "support" / "tinyplugin",
}
#: The oldest SDK (major, minor) each plugin loads on (the demo plugins declare 0.10 but load on 0.9).
PLUGIN_MIN_SDK: dict[str, tuple[int, int]] = {"mockgpt": (0, 9), "mocklab": (0, 9), "tiny": (0, 2)}
USER_ID = "catalog-user"
GOOD_CREDENTIALS: dict[str, str] = {"api_key": "mock-catalog"}
BAD_CREDENTIALS: dict[str, str] = {"api_key": "not-a-mock-key"}

LLM_MODEL = "mockgpt-1"
POLLING_MODEL = "mockgpt-1-polling"
EMBEDDING_MODEL = "mocklab-embed-64"
RERANK_MODEL = "mocklab-rerank-1"
TTS_MODEL = "mocklab-tts-1"
STT_MODEL = "mocklab-stt-1"
MODERATION_MODEL = "mocklab-moderation-1"


@dataclass(frozen=True, slots=True)
class Case:
    """One request of the catalogue and the kind of answer the SDK gives to it."""

    name: str
    plugin: PluginName
    action: str
    data: Mapping[str, Any]
    expect: Expect = "ok"
    note: str = ""
    #: ``error_type`` of the error message, for ``plugin_error`` cases.
    error_type: str | None = None
    #: Stream messages arrive before the error (a failure in the middle of a stream).
    partial: bool = False
    #: The case is about streaming timing (``word_delay`` > 0).
    timing: bool = False
    #: The first SDK (major, minor) whose answer matches ``expect`` (older ones answer otherwise,
    #: e.g. before 0.10 ``input_type`` was optional); conformance compares bytes on every release.
    expect_since: tuple[int, int] = (0, 0)

    @property
    def plugin_dir(self) -> Path:
        return PLUGIN_DIRS[self.plugin]


def envelope(case: Case, session_id: str) -> dict[str, Any]:
    """The request envelope for ``case``, exactly as the daemon would build it."""
    return build_envelope(case.action, copy.deepcopy(dict(case.data)), user_id=USER_ID, session_id=session_id)


def strip_volatile(value: Any) -> Any:
    """A copy with run-dependent values blanked: ``latency`` (timing) and ``traceback`` (paths)."""
    if isinstance(value, dict):
        return {
            key: (0 if key == "latency" else "" if key == "traceback" else strip_volatile(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [strip_volatile(item) for item in value]
    return value


# --- request builders ------------------------------------------------------------------------------


def _model(
    plugin: PluginName, model_type: str, model: str, credentials: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "provider": PROVIDERS[plugin],
        "model_type": model_type,
        "model": model,
        "credentials": dict(GOOD_CREDENTIALS if credentials is None else credentials),
    }


def llm(
    prompt: str,
    *,
    stream: bool = True,
    model: str = LLM_MODEL,
    credentials: Mapping[str, str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
    stop: list[str] | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``invoke_llm`` fields; ``word_delay`` defaults to 0."""
    return {
        **_model("mockgpt", "llm", model, credentials),
        "prompt_messages": messages if messages is not None else [{"role": "user", "content": prompt}],
        "model_parameters": {"word_delay": 0, **(parameters or {})},
        "stop": stop,
        "tools": tools,
        "stream": stream,
    }


def _without(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _load_wavcodec() -> Any:
    """MockLab's WAV codec (standard library only), loaded by path: the catalogue needs real WAVs."""
    path = PLUGINS_DIR / "mocklab" / "models" / "wavcodec.py"
    spec = importlib.util.spec_from_file_location("mocklab_wavcodec", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WAVCODEC = _load_wavcodec()
SPOKEN_TEXT = "hello from the catalogue"
SPOKEN_WAV_HEX = binascii.hexlify(WAVCODEC.encode(SPOKEN_TEXT)).decode()
PLAIN_AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 4
IMAGE_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "data": "first question"}]},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "second question, please"},
]
DOCS = [
    "the quick brown fox",
    "a lazy dog sleeps",
    "brown dogs and quick foxes",
    "nothing relevant here",
]


def _gpt_cases() -> list[Case]:
    g: list[Case] = []

    def add(name: str, action: str, data: Mapping[str, Any], **kw: Any) -> None:
        g.append(Case(name=name, plugin="mockgpt", action=action, data=data, **kw))

    schema = _model("mockgpt", "llm", LLM_MODEL)
    custom = {"api_key": "mock-catalog", "context_size": "4096"}
    # invoke_llm: answers
    add(
        "llm_stream",
        "invoke_llm",
        llm("hello"),
        note="canned reply streamed word by word; usage on the last chunk",
    )
    add(
        "llm_nonstream",
        "invoke_llm",
        llm("hello", stream=False),
        note="exactly one chunk with message and usage",
    )
    add("llm_chat_history", "invoke_llm", llm("", messages=CHAT), note="system/user parts/assistant/user")
    add("llm_echo", "invoke_llm", llm("echo:Hello from the catalogue"), note="reply = text after echo:")
    add("llm_stop_sequence", "invoke_llm", llm("echo:alpha beta STOP gamma", stop=["STOP"]))
    add(
        "llm_max_tokens",
        "invoke_llm",
        llm("words:20", parameters={"max_tokens": 5}),
        note="finish_reason length",
    )
    add("llm_tool_call", "invoke_llm", llm("tool:get_weather", tools=[WEATHER_TOOL]), note="one tool call")
    add("llm_long_stream", "invoke_llm", llm("words:200"), note="201 stream messages, for benchmarks")
    add(
        "llm_stream_timing",
        "invoke_llm",
        llm("words:5", parameters={"word_delay": 0.05}),
        timing=True,
        note="5 words, 50 ms apart",
    )
    add("llm_customizable_model", "invoke_llm", llm("hello", model="my-custom-model", credentials=custom))
    add("llm_polling_model_stream", "invoke_llm", llm("hello", model=POLLING_MODEL))
    add("llm_unicode", "invoke_llm", llm("echo:grüße, 世界 — ok"), note="non-ASCII text on the wire")
    # invoke_llm: errors
    err = "plugin_error"
    add(
        "llm_bad_credentials",
        "invoke_llm",
        llm("hello", credentials=BAD_CREDENTIALS),
        expect=err,
        error_type="InvokeAuthorizationError",
    )
    add(
        "llm_rate_limit",
        "invoke_llm",
        llm("raise:ratelimit"),
        expect=err,
        error_type="InvokeRateLimitError",
        note="before the first chunk",
    )
    add(
        "llm_rate_limit_nonstream",
        "invoke_llm",
        llm("raise:ratelimit", stream=False),
        expect=err,
        error_type="InvokeRateLimitError",
    )
    add(
        "llm_bad_request",
        "invoke_llm",
        llm("raise:badrequest"),
        expect=err,
        error_type="InvokeBadRequestError",
    )
    add(
        "llm_server_unavailable",
        "invoke_llm",
        llm("raise:unavailable"),
        expect=err,
        error_type="InvokeServerUnavailableError",
    )
    add(
        "llm_connection_error",
        "invoke_llm",
        llm("raise:connection"),
        expect=err,
        error_type="InvokeConnectionError",
    )
    add("llm_auth_error", "invoke_llm", llm("raise:auth"), expect=err, error_type="InvokeAuthorizationError")
    add(
        "llm_plain_failure",
        "invoke_llm",
        llm("raise:fail"),
        expect=err,
        error_type="InvokeError",
        note="plain exception, mapped",
    )
    add(
        "llm_crash_midstream",
        "invoke_llm",
        llm("raise:crash"),
        expect=err,
        error_type="RuntimeError",
        partial=True,
        note="3 stream messages, then an unmapped RuntimeError",
    )
    add(
        "llm_crash_nonstream",
        "invoke_llm",
        llm("raise:crash", stream=False),
        expect=err,
        error_type="InvokeError",
    )
    add(
        "llm_unknown_error_kind",
        "invoke_llm",
        llm("raise:bogus"),
        expect=err,
        error_type="InvokeBadRequestError",
    )
    add(
        "llm_unknown_model",
        "invoke_llm",
        llm("hello", model="no-such-model"),
        expect=err,
        error_type="InvokeBadRequestError",
    )
    add(
        "llm_unknown_provider",
        "invoke_llm",
        {**llm("hello"), "provider": "nope"},
        expect=err,
        error_type="ValueError",
    )
    add(
        "llm_tool_not_offered",
        "invoke_llm",
        llm("tool:get_weather"),
        expect=err,
        error_type="InvokeBadRequestError",
    )
    add(
        "llm_parameter_out_of_range",
        "invoke_llm",
        llm("hello", parameters={"temperature": 5}),
        expect=err,
        error_type="ValueError",
        note="checked by the SDK against parameter_rules, before the model runs",
    )
    add(
        "llm_parameter_wrong_type",
        "invoke_llm",
        llm("hello", parameters={"word_delay": "fast"}),
        expect=err,
        error_type="ValueError",
    )
    add(
        "llm_missing_model_parameters",
        "invoke_llm",
        _without(llm("hello"), "model_parameters"),
        expect=err,
        error_type="ValidationError",
        note="request model validation",
    )
    add(
        "llm_prompt_not_a_list",
        "invoke_llm",
        {**llm("hello"), "prompt_messages": "hello"},
        expect=err,
        error_type="AttributeError",
        note="SDK quirk: the route wrapper logs the TypeError and passes the raw dict on",
    )
    # get_llm_num_tokens
    add("llm_num_tokens", "get_llm_num_tokens", {**schema, "prompt_messages": CHAT, "tools": None})
    add(
        "llm_num_tokens_tools",
        "get_llm_num_tokens",
        {**schema, "prompt_messages": CHAT[-1:], "tools": [WEATHER_TOOL]},
    )
    # credentials
    add(
        "gpt_validate_provider",
        "validate_provider_credentials",
        {"provider": "mockgpt", "credentials": GOOD_CREDENTIALS},
    )
    add(
        "gpt_validate_provider_bad",
        "validate_provider_credentials",
        {"provider": "mockgpt", "credentials": BAD_CREDENTIALS},
        expect=err,
        error_type="CredentialsValidateFailedError",
    )
    add("gpt_validate_model", "validate_model_credentials", schema)
    add(
        "gpt_validate_custom_model",
        "validate_model_credentials",
        _model("mockgpt", "llm", "my-custom-model", custom),
    )
    add(
        "gpt_validate_model_bad",
        "validate_model_credentials",
        _model("mockgpt", "llm", LLM_MODEL, BAD_CREDENTIALS),
        expect=err,
        error_type="CredentialsValidateFailedError",
    )
    add(
        "gpt_validate_model_unknown",
        "validate_model_credentials",
        _model("mockgpt", "llm", "no-such-model"),
        expect=err,
        error_type="CredentialsValidateFailedError",
    )
    # schemas
    add("gpt_schema_predefined", "get_ai_model_schemas", schema)
    add(
        "gpt_schema_customizable", "get_ai_model_schemas", _model("mockgpt", "llm", "my-custom-model", custom)
    )
    add(
        "gpt_schema_unknown",
        "get_ai_model_schemas",
        _model("mockgpt", "llm", "no-such-model"),
        note="model_schema null",
    )
    add(
        "gpt_schema_wrong_model_type",
        "get_ai_model_schemas",
        _model("mockgpt", "rerank", LLM_MODEL),
        expect=err,
        error_type="KeyError",
        note="the provider has no rerank model",
    )
    # polling
    polling = llm("hello", stream=False, model=POLLING_MODEL)
    add("poll_start", "start_polling", polling, note="status running with plugin_state")
    add(
        "poll_start_fail",
        "start_polling",
        llm("raise:fail", stream=False, model=POLLING_MODEL),
        note="running; check says failed",
    )
    add(
        "poll_start_rate_limit",
        "start_polling",
        llm("raise:ratelimit", stream=False, model=POLLING_MODEL),
        expect=err,
        error_type="InvokeRateLimitError",
    )
    add(
        "poll_start_unsupported",
        "start_polling",
        llm("hello", stream=False),
        expect=err,
        error_type="ValueError",
    )
    add(
        "poll_start_stream_true",
        "start_polling",
        llm("hello", model=POLLING_MODEL),
        expect=err,
        error_type="ValidationError",
    )
    poll_model = _model("mockgpt", "llm", POLLING_MODEL)
    reply = "The quick brown fox jumps over the lazy dog while the tests keep watching."
    add(
        "poll_check_running",
        "check_polling",
        {
            **poll_model,
            "plugin_state": {"job": "j1", "polls_remaining": 1, "prompt_tokens": 4, "reply": reply},
        },
    )
    add(
        "poll_check_succeeded",
        "check_polling",
        {
            **poll_model,
            "plugin_state": {"job": "j1", "polls_remaining": 0, "prompt_tokens": 4, "reply": reply},
        },
    )
    add(
        "poll_check_failed",
        "check_polling",
        {**poll_model, "plugin_state": {"job": "j1", "polls_remaining": 0, "error": "simulated failure"}},
    )
    add(
        "poll_check_bad_state",
        "check_polling",
        {**poll_model, "plugin_state": {"polls_remaining": "soon"}},
        expect=err,
        error_type="InvokeBadRequestError",
    )
    add(
        "poll_check_empty_state",
        "check_polling",
        {**poll_model, "plugin_state": {}},
        expect=err,
        error_type="ValidationError",
    )
    add(
        "poll_check_unsupported",
        "check_polling",
        {**schema, "plugin_state": {"polls_remaining": 0}},
        expect=err,
        error_type="ValueError",
    )
    # the SDK answers an action it does not know with a bare end
    add("gpt_unknown_action", "invoke_text2img", schema, expect="end_only")
    return g


def _lab_cases() -> list[Case]:
    c: list[Case] = []

    def add(name: str, action: str, data: Mapping[str, Any], **kw: Any) -> None:
        c.append(Case(name=name, plugin="mocklab", action=action, data=data, **kw))

    err = "plugin_error"
    emb = _model("mocklab", "text-embedding", EMBEDDING_MODEL)
    rr = _model("mocklab", "rerank", RERANK_MODEL)
    tts = _model("mocklab", "tts", TTS_MODEL)
    stt = _model("mocklab", "speech2text", STT_MODEL)
    mod = _model("mocklab", "moderation", MODERATION_MODEL)
    # embeddings
    add("embed_documents", "invoke_text_embedding", {**emb, "texts": DOCS, "input_type": "document"})
    add("embed_query", "invoke_text_embedding", {**emb, "texts": ["quick fox"], "input_type": "query"})
    add("embed_empty_text", "invoke_text_embedding", {**emb, "texts": [""], "input_type": "document"})
    add(
        "embed_too_many",
        "invoke_text_embedding",
        {**emb, "texts": [f"text {i}" for i in range(33)], "input_type": "document"},
        expect=err,
        error_type="InvokeBadRequestError",
        note="max_chunks is 32",
    )
    add(
        "embed_missing_input_type",
        "invoke_text_embedding",
        {**emb, "texts": DOCS},
        expect=err,
        error_type="ValidationError",
        expect_since=(0, 10),
    )
    add(
        "embed_rate_limit",
        "invoke_text_embedding",
        {**emb, "texts": ["fine", "raise:ratelimit"], "input_type": "document"},
        expect=err,
        error_type="InvokeRateLimitError",
    )
    add(
        "embed_bad_credentials",
        "invoke_text_embedding",
        {
            **_model("mocklab", "text-embedding", EMBEDDING_MODEL, BAD_CREDENTIALS),
            "texts": DOCS,
            "input_type": "document",
        },
        expect=err,
        error_type="InvokeAuthorizationError",
    )
    add(
        "embed_unknown_model",
        "invoke_text_embedding",
        {**_model("mocklab", "text-embedding", "no-such-model"), "texts": DOCS, "input_type": "document"},
        expect=err,
        error_type="InvokeBadRequestError",
    )
    docs_mm = [
        {"content": "a quick fox", "content_type": "text"},
        {"content": IMAGE_B64, "content_type": "image"},
    ]
    add(
        "embed_multimodal",
        "invoke_multimodal_embedding",
        {**emb, "documents": docs_mm, "input_type": "document"},
    )
    add(
        "embed_multimodal_query",
        "invoke_multimodal_embedding",
        {**emb, "documents": docs_mm[:1], "input_type": "query"},
    )
    add("embed_num_tokens", "get_text_embedding_num_tokens", {**emb, "texts": [*DOCS, "", "Hello, world!"]})
    # rerank
    add(
        "rerank_top_n",
        "invoke_rerank",
        {**rr, "query": "quick brown fox", "docs": DOCS, "score_threshold": None, "top_n": 2},
    )
    add(
        "rerank_threshold",
        "invoke_rerank",
        {**rr, "query": "quick brown fox", "docs": DOCS, "score_threshold": 0.5, "top_n": None},
    )
    add(
        "rerank_daemon_zeros",
        "invoke_rerank",
        {**rr, "query": "quick brown fox", "docs": DOCS, "score_threshold": 0, "top_n": 0},
        note="the daemon sends 0 for unset fields: all docs",
    )
    add(
        "rerank_no_docs",
        "invoke_rerank",
        {**rr, "query": "anything", "docs": [], "score_threshold": None, "top_n": None},
    )
    add(
        "rerank_rate_limit",
        "invoke_rerank",
        {**rr, "query": "raise:ratelimit", "docs": DOCS, "score_threshold": None, "top_n": None},
        expect=err,
        error_type="InvokeRateLimitError",
    )
    add(
        "rerank_missing_top_n",
        "invoke_rerank",
        {**rr, "query": "fox", "docs": DOCS, "score_threshold": None},
        expect=err,
        error_type="ValidationError",
        note="top_n is a required key (null allowed)",
    )
    mm_docs = [
        {"content": "quick brown fox", "content_type": "text"},
        {"content": IMAGE_B64, "content_type": "image"},
        {"content": "lazy dog", "content_type": "text"},
    ]
    add(
        "rerank_multimodal",
        "invoke_multimodal_rerank",
        {
            **rr,
            "query": {"content": "brown fox", "content_type": "text"},
            "docs": mm_docs,
            "score_threshold": None,
            "top_n": None,
        },
    )
    add(
        "rerank_multimodal_image_query",
        "invoke_multimodal_rerank",
        {
            **rr,
            "query": {"content": IMAGE_B64, "content_type": "image"},
            "docs": mm_docs,
            "score_threshold": 0.5,
            "top_n": 1,
        },
    )
    # tts
    add(
        "tts_alice",
        "invoke_tts",
        {**tts, "content_text": "Hello there, general Kenobi.", "voice": "alice", "tenant_id": "t1"},
        note="several chunks",
    )
    add(
        "tts_unknown_voice",
        "invoke_tts",
        {**tts, "content_text": "hi", "voice": "nobody", "tenant_id": "t1"},
        note="default voice",
    )
    add(
        "tts_empty_text",
        "invoke_tts",
        {**tts, "content_text": "", "voice": "bob", "tenant_id": "t1"},
        note="one chunk, header only",
    )
    add(
        "tts_rate_limit",
        "invoke_tts",
        {**tts, "content_text": "raise:ratelimit", "voice": "alice", "tenant_id": "t1"},
        expect=err,
        error_type="InvokeRateLimitError",
    )
    add("tts_voices", "get_tts_model_voices", {**tts, "language": None})
    add("tts_voices_french", "get_tts_model_voices", {**tts, "language": "fr-FR"})
    add(
        "tts_voices_unknown_language", "get_tts_model_voices", {**tts, "language": "xx-XX"}, note="empty list"
    )
    # speech2text
    add(
        "stt_mocklab_wav",
        "invoke_speech2text",
        {**stt, "file": SPOKEN_WAV_HEX},
        note=f"transcript {SPOKEN_TEXT!r}",
    )
    add(
        "stt_other_audio",
        "invoke_speech2text",
        {**stt, "file": PLAIN_AUDIO.hex()},
        note="'<n> bytes of audio'",
    )
    add(
        "stt_rate_limit",
        "invoke_speech2text",
        {**stt, "file": WAVCODEC.encode("raise:ratelimit").hex()},
        expect=err,
        error_type="InvokeRateLimitError",
    )
    add(
        "stt_invalid_hex",
        "invoke_speech2text",
        {**stt, "file": "zz"},
        expect=err,
        error_type="Error",
        note="binascii.Error",
    )
    # moderation
    add("moderation_clean", "invoke_moderation", {**mod, "text": "a friendly sentence"})
    add("moderation_flagged", "invoke_moderation", {**mod, "text": "I hate Mondays"})
    add(
        "moderation_rate_limit",
        "invoke_moderation",
        {**mod, "text": "raise:ratelimit"},
        expect=err,
        error_type="InvokeRateLimitError",
    )
    # credentials and schemas
    add(
        "lab_validate_provider",
        "validate_provider_credentials",
        {"provider": "mocklab", "credentials": GOOD_CREDENTIALS},
    )
    add(
        "lab_validate_provider_bad",
        "validate_provider_credentials",
        {"provider": "mocklab", "credentials": {}},
        expect=err,
        error_type="CredentialsValidateFailedError",
    )
    for name, data in (("embedding", emb), ("rerank", rr), ("tts", tts), ("stt", stt), ("moderation", mod)):
        add(f"lab_validate_model_{name}", "validate_model_credentials", data)
        add(f"lab_schema_{name}", "get_ai_model_schemas", data)
    add(
        "lab_validate_model_unknown",
        "validate_model_credentials",
        _model("mocklab", "rerank", "no-such-model"),
        expect=err,
        error_type="CredentialsValidateFailedError",
    )
    add(
        "lab_wrong_model_type",
        "invoke_llm",
        {**llm("hello"), "provider": "mocklab"},
        expect=err,
        error_type="KeyError",
    )
    return c


def _tiny_cases() -> list[Case]:
    """Every model action that every supported SDK release routes, against the tiny test plugin."""
    t: list[Case] = []

    def add(name: str, action: str, data: Mapping[str, Any], **kw: Any) -> None:
        t.append(Case(name=name, plugin="tiny", action=action, data=data, **kw))

    err = "plugin_error"
    good = {"api_key": "tiny-key"}
    bad = {"api_key": "wrong"}

    def model(model_type: str, name: str, credentials: Mapping[str, str] = good) -> dict[str, Any]:
        return {"provider": "tiny", "model_type": model_type, "model": name, "credentials": dict(credentials)}

    def chat(text: str, *, stream: bool = True) -> dict[str, Any]:
        return {
            **model("llm", "tiny-llm"),
            "prompt_messages": [{"role": "user", "content": text}],
            "model_parameters": {},
            "stop": None,
            "tools": None,
            "stream": stream,
        }

    add("tiny_llm_stream", "invoke_llm", chat("one two three"))
    add("tiny_llm_nonstream", "invoke_llm", chat("one two", stream=False))
    add("tiny_llm_error", "invoke_llm", chat("boom"), expect=err, error_type="InvokeBadRequestError")
    add(
        "tiny_llm_late_error",
        "invoke_llm",
        chat("late boom"),
        expect=err,
        partial=True,
        error_type="InvokeBadRequestError",
    )
    add("tiny_llm_rate_limit", "invoke_llm", chat("ratelimit"), expect=err, error_type="InvokeRateLimitError")
    add(
        "tiny_llm_bad_type",
        "invoke_llm",
        {**chat("hi"), "prompt_messages": [{"role": "nobody", "content": "hi"}]},
        expect=err,
        error_type="ValidationError",
    )
    add(
        "tiny_llm_num_tokens",
        "get_llm_num_tokens",
        {
            **model("llm", "tiny-llm"),
            "prompt_messages": [{"role": "user", "content": "a b c"}],
            "tools": None,
        },
    )
    emb = model("text-embedding", "tiny-embed")
    add("tiny_embed", "invoke_text_embedding", {**emb, "texts": ["quick fox", "lazy dog"]})
    add("tiny_embed_num_tokens", "get_text_embedding_num_tokens", {**emb, "texts": ["a b", "c"]})
    add(
        "tiny_rerank",
        "invoke_rerank",
        {
            **model("rerank", "tiny-rerank"),
            "query": "quick fox",
            "docs": ["quick brown fox", "lazy dog"],
            "score_threshold": None,
            "top_n": None,
        },
    )
    tts = model("tts", "tiny-tts")
    add("tiny_tts", "invoke_tts", {**tts, "content_text": "hello there", "voice": "alice", "tenant_id": "t1"})
    add("tiny_tts_voices", "get_tts_model_voices", {**tts, "language": None})
    add("tiny_stt", "invoke_speech2text", {**model("speech2text", "tiny-stt"), "file": PLAIN_AUDIO.hex()})
    mod = model("moderation", "tiny-mod")
    add("tiny_moderation", "invoke_moderation", {**mod, "text": "this is forbidden"})
    add("tiny_validate_provider", "validate_provider_credentials", {"provider": "tiny", "credentials": good})
    add(
        "tiny_validate_provider_bad",
        "validate_provider_credentials",
        {"provider": "tiny", "credentials": bad},
        expect=err,
        error_type="CredentialsValidateFailedError",
    )
    add("tiny_validate_model", "validate_model_credentials", model("llm", "tiny-llm"))
    add(
        "tiny_validate_model_bad",
        "validate_model_credentials",
        model("llm", "tiny-llm", bad),
        expect=err,
        error_type="CredentialsValidateFailedError",
    )
    add("tiny_schema", "get_ai_model_schemas", model("llm", "tiny-llm"))
    add(
        "tiny_polling",
        "start_polling",
        chat("hello"),
        note="routed from 0.9 on (the tiny plugin has no polling model); older releases answer end only",
    )
    return t


CASES: tuple[Case, ...] = (*_gpt_cases(), *_lab_cases())
#: The tiny test plugin's cases, kept apart from :data:`CASES` (the demo plugins' catalogue).
TINY_CASES: tuple[Case, ...] = tuple(_tiny_cases())
CASES_BY_NAME: dict[str, Case] = {case.name: case for case in (*CASES, *TINY_CASES)}
if len(CASES_BY_NAME) != len(CASES) + len(TINY_CASES):  # pragma: no cover - guards edits to the lists above
    raise ValueError("duplicate case names in the catalogue")


def case(name: str) -> Case:
    """The case called ``name``; KeyError names the missing case."""
    try:
        return CASES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no catalogue case named {name!r}") from None


def cases_for(plugin: PluginName) -> list[Case]:
    return [c for c in CASES if c.plugin == plugin]
