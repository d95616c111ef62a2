"""Logs and metrics of real invocations: useful fields present, secrets and payloads absent.

Requests carry distinctive markers in the credentials, the prompt, TTS text, STT audio, embedding
texts and the shared secret (sent in the path). The captured stdout/stderr of the handler process
(Powertools JSON logs, EMF metrics, anything the SDK prints) must contain none of them, in any
encoding the handler could have produced (raw, hex), while the log lines still carry request id,
session id, plugin id, action and cold start, and EMF blobs carry the DifyLambda metrics.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

import httpx
from support.catalog import PLUGINS_DIR, WAVCODEC
from support.handler_proc import running_handler

from dify_lambda import wire

SECRET = "SECRETMARKER-7f3a9c"
API_KEY = "mock-CREDMARKER-5e1d"
PROMPT = "PROMPTMARKER tell me about the quick brown fox"
SPEECH = "AUDIOMARKER spoken words"
MARKERS = ("SECRETMARKER", "CREDMARKER", "PROMPTMARKER", "AUDIOMARKER", "EMBEDMARKER")


def model(plugin: str, model_type: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": plugin,
        "model_type": model_type,
        "model": name,
        "credentials": {"api_key": API_KEY},
        **extra,
    }


def llm(prompt: str, **extra: Any) -> dict[str, Any]:
    return model(
        "mockgpt",
        "llm",
        "mockgpt-1",
        prompt_messages=[{"role": "user", "content": prompt}],
        model_parameters={"word_delay": 0},
        stop=None,
        tools=None,
        stream=True,
        **extra,
    )


def send(
    url: str, action: str, data: dict[str, Any], session_id: str, *, raw: bytes | None = None
) -> httpx.Response:
    envelope = wire.build_envelope(action, data, user_id="u-log", session_id=session_id)
    return httpx.post(
        f"{url}/{SECRET}/invoke",
        params={"action": action},
        content=raw if raw is not None else wire.encode_envelope(envelope),
        headers={"Content-Type": "application/json"},
        timeout=60.0,
    )


def forbidden_texts() -> list[str]:
    texts = list(MARKERS)
    for marker in MARKERS:
        texts.append(binascii.hexlify(marker.encode()).decode())
    texts.append(binascii.hexlify(WAVCODEC.encode(SPEECH)).decode()[:64])
    return texts


def check_output(output: str) -> list[dict[str, Any]]:
    for text in forbidden_texts():
        assert text not in output, f"{text!r} leaked into the handler output"
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_gpt_invocations_log_ids_but_no_secrets_or_prompts() -> None:
    env = {"DIFY_LAMBDA_URL_AUTH": "NONE", "DIFY_LAMBDA_SECRET": SECRET}
    with running_handler(PLUGINS_DIR / "mockgpt", env) as handler:
        ok = send(handler.url, "invoke_llm", llm("echo:" + PROMPT), "log-ok")
        failed = send(handler.url, "invoke_llm", llm("raise:badrequest " + PROMPT), "log-error")
        invalid = send(handler.url, "invoke_llm", {**llm(PROMPT), "stop": "PROMPTMARKER"}, "log-invalid")
        broken = send(handler.url, "invoke_llm", {}, "log-broken", raw=b'{"PROMPTMARKER": ')
        validate = send(
            handler.url,
            "validate_provider_credentials",
            {"provider": "mockgpt", "credentials": {"api_key": "CREDMARKER-bad"}},
            "log-validate",
        )
        # The last thing the handler writes for these requests: the Errors metric of the last one.
        output = handler.wait_for_output('"CredentialsValidateFailedError","Errors"')
    assert ok.status_code == failed.status_code == validate.status_code == 200
    assert b"PROMPTMARKER" in ok.content  # the marker really travelled through the plugin
    assert b'"type":"error"' in failed.content
    assert invalid.status_code == broken.status_code == 400
    entries = check_output(output)

    logs = [e for e in entries if "level" in e]
    finished = {e["session_id"]: e for e in logs if e.get("message", "").startswith("invocation finished")}
    assert set(finished) == {"log-ok", "log-error", "log-validate"}
    for session_id, entry in finished.items():
        assert entry["plugin_id"] == "dify-lambda/mockgpt"
        assert entry["request_id"]
        assert isinstance(entry["cold_start"], bool)
        assert entry["action"] in {"invoke_llm", "validate_provider_credentials"}, session_id
    assert finished["log-ok"]["events"] > 2
    assert finished["log-error"]["error_type"] == "InvokeBadRequestError"
    assert finished["log-validate"]["error_type"] == "CredentialsValidateFailedError"
    assert sum(1 for e in logs if e.get("cold_start") is True) == 1

    rejected = [e for e in logs if e.get("message") == "request rejected"]
    assert [e["error_type"] for e in rejected] == ["InvalidRequestError", "InvalidRequestError"]

    emf = [e for e in entries if "_aws" in e]
    namespaces = {m["Namespace"] for e in emf for m in e["_aws"]["CloudWatchMetrics"]}
    assert namespaces == {"DifyLambda"}
    invocations = [e for e in emf if "Invocations" in e]
    assert {(e["plugin_id"], e["action"]) for e in invocations} == {
        ("dify-lambda/mockgpt", "invoke_llm"),
        ("dify-lambda/mockgpt", "validate_provider_credentials"),
    }
    assert all("TimeToFirstEvent" in e and "Duration" in e and "Events" in e for e in invocations)
    errors = {e["error_type"] for e in emf if "Errors" in e}
    assert errors == {"InvokeBadRequestError", "CredentialsValidateFailedError"}


def test_audio_and_embedding_payloads_stay_out_of_the_logs() -> None:
    env = {"DIFY_LAMBDA_URL_AUTH": "NONE", "DIFY_LAMBDA_SECRET": SECRET}
    with running_handler(PLUGINS_DIR / "mocklab", env) as handler:
        stt = send(
            handler.url,
            "invoke_speech2text",
            model("mocklab", "speech2text", "mocklab-stt-1", file=WAVCODEC.encode(SPEECH).hex()),
            "log-stt",
        )
        tts = send(
            handler.url,
            "invoke_tts",
            model("mocklab", "tts", "mocklab-tts-1", content_text=SPEECH, voice="alice", tenant_id="t"),
            "log-tts",
        )
        emb = send(
            handler.url,
            "invoke_text_embedding",
            model(
                "mocklab", "text-embedding", "mocklab-embed-64", texts=["EMBEDMARKER one"], input_type="query"
            ),
            "log-emb",
        )
        output = handler.wait_for_output('"session_id":"log-emb"')
    assert stt.status_code == tts.status_code == emb.status_code == 200
    assert b"AUDIOMARKER" in stt.content  # transcribed back: the audio really carried the marker
    entries = check_output(output)
    actions = {e["action"] for e in entries if e.get("message") == "invocation finished"}
    assert actions == {"invoke_speech2text", "invoke_tts", "invoke_text_embedding"}
