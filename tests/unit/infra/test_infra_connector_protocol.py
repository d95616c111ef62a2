"""Connector wire formats and the multipart parser."""

from __future__ import annotations

import json

import pytest

from dify_lambda.infra.connector import protocol
from dify_lambda.infra.connector.multipart import parse_form
from dify_lambda.infra.errors import ConnectorError


def test_pong_is_a_json_string() -> None:
    assert json.loads(protocol.PONG) == "pong"


def test_chunk_is_one_data_line_with_the_four_fields() -> None:
    line = protocol.chunk("build", "running", "resolving\ndependencies  now")
    assert line.startswith(b"data: ") and line.endswith(b"\n\n")
    assert line.count(b"\n") == 2
    assert json.loads(line[len(b"data: ") :]) == {
        "Stage": "build",
        "State": "running",
        "Obj": "",
        "Message": "resolving dependencies now",
    }


def test_run_success_message_is_comma_separated() -> None:
    message = protocol.run_success_message("https://u.lambda-url.us-east-1.on.aws/sec", "dify-x", "arn:aws:x")
    assert message == "endpoint=https://u.lambda-url.us-east-1.on.aws/sec,name=dify-x,id=arn:aws:x"
    pairs = dict(p.split("=", 1) for p in message.split(","))
    assert pairs == {
        "endpoint": "https://u.lambda-url.us-east-1.on.aws/sec",
        "name": "dify-x",
        "id": "arn:aws:x",
    }
    with pytest.raises(ConnectorError, match="'name'"):
        protocol.run_success_message("https://u", "a,b", "id")
    with pytest.raises(ConnectorError, match="'endpoint'"):
        protocol.run_success_message("", "a", "id")


def test_instances_body_uses_the_daemon_spelling() -> None:
    item = protocol.instance_item("id1", "dify-x", "https://e/sec", "arn")
    body = json.loads(protocol.instances_body([item]))
    assert body == {
        "error": "",
        "Items": [
            {
                "ID": "id1",
                "Name": "dify-x",
                "Endpoint": "https://e/sec",
                "ResourceName": "arn",
                "Status": {"State": "running"},
            }
        ],
    }
    assert json.loads(protocol.instances_body([], error="bad")) == {"error": "bad", "Items": []}


BOUNDARY = "0123456789abcdef"
CT = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: bytes) -> bytes:
    out = b""
    for part in parts:
        out += f"--{BOUNDARY}\r\n".encode() + part + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def test_parse_fields_and_binary_file_byte_for_byte() -> None:
    payload = bytes(range(256)) + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n\r\n"
    body = form(
        b'Content-Disposition: form-data; name="verified"\r\n\r\ntrue',
        b'Content-Disposition: form-data; name="metadata"\r\n\r\n{"a":1}',
        b'Content-Disposition: form-data; name="context"; filename="a@b@1.0.0@ff.difypkg"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + payload,
    )
    parsed = parse_form(CT, b"preamble\r\n" + body + b"epilogue")
    assert parsed.fields == {"verified": "true", "metadata": '{"a":1}'}
    assert parsed.files["context"].filename == "a@b@1.0.0@ff.difypkg"
    assert parsed.files["context"].data == payload


def test_quoted_parameters_are_unescaped() -> None:
    body = form(b'Content-Disposition: form-data; name="f"; filename="we\\"ird\\\\.difypkg"\r\n\r\nx')
    assert parse_form(CT, body).files["f"].filename == 'we"ird\\.difypkg'


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b"{}", "must be multipart/form-data"),
        ("multipart/form-data", b"", "no valid boundary"),
        (CT, b"no boundary here", "does not contain its boundary"),
        (CT, f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=x\r\n\r\nvalue".encode(), "truncated"),
        (CT, form(b"Content-Disposition: attachment\r\n\r\nx"), "form-data with a name"),
        (CT, form(b"Bad header\r\n\r\nx"), "malformed header"),
        (
            CT,
            form(
                b'Content-Disposition: form-data; name="a"\r\n\r\n1',
                b'Content-Disposition: form-data; name="a"\r\n\r\n2',
            ),
            "appears more than once",
        ),
        (CT, form(b'Content-Disposition: form-data; name="a"\r\n\r\n\xff'), "not UTF-8"),
        (
            CT,
            form(*[f'Content-Disposition: form-data; name="f{i}"\r\n\r\nv'.encode() for i in range(20)]),
            "more than 16",
        ),
    ],
)
def test_malformed_forms_are_named(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        parse_form(content_type, body)
