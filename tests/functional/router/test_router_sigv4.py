"""SigV4 for ``iam`` deployments, checked by a loopback server that recomputes the signature."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from router_servers import running, write_chunked

from dify_lambda import wire
from dify_lambda.router.client import Router
from dify_lambda.router.routes import parse_route_table

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-1")
REGION = "eu-central-1"
PID = "acme/signed"


def verify(handler: BaseHTTPRequestHandler, body: bytes) -> str:
    """'ok' or why the signature does not verify (recomputed with botocore and the same fake keys)."""
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    signed = parts["SignedHeaders"].split(";")
    scope = parts["Credential"].split("/")
    if scope[0] != CREDS.access_key or scope[2] != REGION or scope[3] != "lambda":
        return f"wrong credential scope {scope[1:]}"
    headers = {name: handler.headers[name] for name in signed if name != "host"}
    url = f"http://{handler.headers['Host']}{handler.path}"
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    signer = SigV4Auth(CREDS, "lambda", REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != parts["Signature"]:
        return "signature mismatch"
    if handler.headers.get("X-Amz-Security-Token") != CREDS.token:
        return "missing session token"
    return "ok"


def test_sigv4_signature_verifies_and_is_fresh_per_attempt() -> None:
    results: list[str] = []
    signed_headers: list[str] = []

    def behaviour(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        results.append(verify(handler, body))
        signed_headers.append(handler.headers.get("Authorization", ""))
        if len(results) == 1:  # make the router retry once: it must sign again
            handler.send_response(502)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        sid = json.loads(body)["session_id"]
        write_chunked(handler, [wire.session_line(sid, "stream", {"ok": 1}), wire.end_line(sid)])

    with running(behaviour) as server:
        table = parse_route_table(
            {"routes": {PID: {"deployments": [{"url": server.url + "/", "auth": "iam", "region": REGION}]}}},
            source="t",
        )
        sleeps: list[float] = []
        with Router(table, credentials=lambda: CREDS, sleep=sleeps.append) as router:
            events: list[Any] = list(router.invoke(PID, "invoke_llm", {"provider": "p"}, user_id="u"))
    assert results == ["ok", "ok"]
    assert events[0].data == {"ok": 1}
    assert "content-type" in signed_headers[0] and "dify-plugin-session-id" in signed_headers[0]
    assert len(sleeps) == 1
