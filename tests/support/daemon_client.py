"""A client that talks to a serverless connector the way the Dify plugin daemon does (docs/connector.md §6).

Written from the daemon's documented behaviour, not its code:

- every request carries ``Authorization: <key>`` (the raw key);
- ``POST /ping`` must answer a body that JSON-decodes to the string ``pong``;
- ``GET /v1/runner/instances?filename=...``: non-empty ``error`` is an error, empty ``Items`` is
  "not found", otherwise ``Items[0]`` gives ``Name``, ``Endpoint`` and ``ResourceName``;
- ``POST /v1/launch`` (multipart ``context`` file, ``verified``, ``metadata``): a non-200 status
  fails with the body text; the body is read line by line, empty lines skipped, a leading
  ``data:`` stripped, ``event:`` lines ignored, non-JSON lines skipped; each chunk is mapped to
  the daemon's events as ``SetupFunction`` does, and ``done`` requires a function name and URL.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx


class DaemonError(Exception):
    """What the daemon would report as an error."""


@dataclass
class Instance:
    id: str
    name: str
    endpoint: str
    resource_name: str


@dataclass
class LaunchOutcome:
    events: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    skipped_lines: list[str] = field(default_factory=list)
    function_name: str | None = None
    function_url: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and ("done", "Plugin launched") in self.events


def _comma_values(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in message.split(","):
        key, sep, value = pair.partition("=")
        if not sep:
            raise DaemonError(f"cannot parse launch result {message!r}")
        out[key.strip()] = value.strip()
    return out


def multipart_body(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[str, bytes]:
    """A form as Go's mime/multipart writes it: CRLF, quoted names, octet-stream files."""
    boundary = secrets.token_hex(30)
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, filename, data in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


class DaemonClient:
    def __init__(self, base_url: str, api_key: str, *, launch_timeout: float = 240.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.launch_timeout = launch_timeout
        self.http = httpx.Client(timeout=httpx.Timeout(launch_timeout, connect=5.0))

    def close(self) -> None:
        self.http.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self.api_key}

    def ping(self) -> None:
        """The startup check; the daemon panics when it fails."""
        response = self.http.post(f"{self.base_url}/ping", headers=self._headers())
        try:
            value = json.loads(response.content)
        except ValueError as exc:
            raise DaemonError(f"ping: body is not JSON (status {response.status_code})") from exc
        if value != "pong":
            raise DaemonError(f"ping: expected 'pong', got {value!r}")

    def find_instance(self, filename: str) -> Instance | None:
        response = self.http.get(
            f"{self.base_url}/v1/runner/instances", params={"filename": filename}, headers=self._headers()
        )
        body = response.json()
        error = body.get("error") or ""
        if error:
            raise DaemonError(error)
        items = body.get("Items") or body.get("items") or []
        if not items:
            return None
        first = items[0]
        return Instance(
            id=first.get("ID", ""),
            name=first.get("Name", ""),
            endpoint=first.get("Endpoint", ""),
            resource_name=first.get("ResourceName", ""),
        )

    def launch(
        self, package: bytes, filename: str, *, verified: bool = True, unique_identifier: str | None = None
    ) -> LaunchOutcome:
        if unique_identifier is None:
            parts = filename.removesuffix(".difypkg").split("@")
            unique_identifier = f"{parts[0]}/{parts[1]}:{parts[2]}@{parts[3]}" if len(parts) == 4 else ""
        metadata = json.dumps({"plugin_unique_identifier": unique_identifier})
        content_type, body = multipart_body(
            [("verified", "true" if verified else "false"), ("metadata", metadata)],
            [("context", filename, package)],
        )
        outcome = LaunchOutcome()
        headers = {**self._headers(), "Content-Type": content_type}
        with self.http.stream(
            "POST", f"{self.base_url}/v1/launch", content=body, headers=headers
        ) as response:
            if response.status_code != 200:
                outcome.error = (
                    f"launch failed: {response.status_code} {response.read().decode(errors='replace')}"
                )
                return outcome
            for raw in response.iter_lines():
                line = raw.strip()
                if not line or line.startswith("event:"):
                    continue
                line = line.removeprefix("data:").strip()
                try:
                    chunk = json.loads(line)
                except ValueError:
                    outcome.skipped_lines.append(line)
                    continue
                outcome.chunks.append(chunk)
                if self._setup_function(chunk, outcome):
                    break
        if outcome.error is None and not any(e == "done" for e, _ in outcome.events):
            outcome.error = "launch stream ended without an end chunk"
        return outcome

    @staticmethod
    def _setup_function(chunk: dict[str, Any], outcome: LaunchOutcome) -> bool:
        """Map one chunk to daemon events; True when the launch is over (error or done)."""
        stage, state, message = chunk.get("Stage"), chunk.get("State"), chunk.get("Message", "")
        if state == "failed":
            outcome.error = message
            outcome.events.append(("error", message))
            return True
        if stage in ("start", "build"):
            outcome.events.append(("info", "Building plugin..."))
        elif stage == "run" and state != "success":
            outcome.events.append(("info", "Launching plugin..."))
        elif stage == "run" and state == "success":
            try:
                values = _comma_values(message)
            except DaemonError as exc:
                outcome.error = str(exc)
                return True
            outcome.function_name = values.get("name")
            outcome.function_url = values.get("endpoint")
            outcome.events.append(("function", outcome.function_name or ""))
            outcome.events.append(("function_url", outcome.function_url or ""))
        elif stage == "end":
            if not outcome.function_name or not outcome.function_url:
                outcome.error = "failed to get lambda url or function name"
                return True
            outcome.events.append(("done", "Plugin launched"))
            return True
        return False

    def launch_plugin(self, package: bytes, filename: str, *, verified: bool = True) -> LaunchOutcome:
        """The daemon's LaunchPlugin: look up an instance first, launch only when none exists."""
        found = self.find_instance(filename)
        if found is not None:
            outcome = LaunchOutcome(function_name=found.name, function_url=found.endpoint)
            outcome.events += [
                ("function_url", found.endpoint),
                ("function", found.name),
                ("done", "Plugin launched"),
            ]
            return outcome
        return self.launch(package, filename, verified=verified)
