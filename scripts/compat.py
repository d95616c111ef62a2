"""`make compat`: every model plugin of a dify-official-plugins checkout, run the way users run it.

For each plugin under ``models/`` of the checkout given as ``--official`` (a work tree, or a bare git
directory whose ``HEAD`` is exported):

1. ``dify-lambda package`` the source directory, then ``inspect --json`` the package;
2. ``dify-lambda build`` it for x86_64 (the build's own smoke init included);
3. ``dify-lambda serve`` the build, and start the plugin's own SDK serverless server
   (``INSTALL_METHOD=serverless``) in a virtualenv holding exactly its locked dependencies;
4. send both the same requests that need no upstream service: the schema of each predefined model,
   ``get_*_num_tokens``, and credential validations whose endpoints are unreachable (every outbound
   connection of both servers goes to a closed loopback port, so they fail at once and must end in a
   typed error);
5. compare the answers event for event (``usage.latency`` and ``args.traceback`` aside).

It prints ``N/M`` plugins passing and writes docs/compatibility.md. It is not part of ``make test``:
it needs the checkout, PyPI and many minutes. The checkout's files are only read; nothing of them is
written into this repository except the plugin names in the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.handler_proc import normalise_line  # noqa: E402
from support.sdk_server import SdkServerError, start_sdk_server  # noqa: E402

from dify_lambda.wire import build_envelope, encode_envelope  # noqa: E402

CLI = [sys.executable, "-m", "dify_lambda"]
# Outbound connections of both servers go here: a loopback port nothing listens on.
DEAD_PROXY = "http://127.0.0.1:9"
UNREACHABLE_URL = "http://127.0.0.1:9/v1"
REQUEST_TIMEOUT = 120.0
READY_TIMEOUT = 180.0
# What the daemon's packager passes to `uv export` besides the format.
NO_EXTRAS = ("--no-hashes", "--no-header", "--no-annotate")


@dataclass
class Outcome:
    plugin: str
    sdk_pin: str = "?"
    build_s: float | None = None
    artifact_mb: float | None = None
    ready_ms: float | None = None
    requests: int = 0
    matched: int = 0
    sdk_errors: int = 0
    result: str = "not run"
    reasons: list[str] = field(default_factory=list)
    #: Packages the harness let the build make from their sdists (official plugins are trusted here).
    sdists: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.result == "pass"


def fail(outcome: Outcome, stage: str, message: str) -> Outcome:
    outcome.result = f"{stage} failed"
    outcome.reasons.append(message.strip().splitlines()[-1][:300] if message.strip() else stage)
    return outcome


def export_models(official: Path, dest: Path) -> Path:
    """The ``models/`` directory of a work tree, or of a bare git directory's HEAD (exported once)."""
    if (official / "models").is_dir():
        return official / "models"
    target = dest / "official"
    if not (target / "models").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "--git-dir", str(official), "archive", "--format=tar", "HEAD", "models"],
            capture_output=True,
            check=True,
        ).stdout
        with tempfile.TemporaryFile() as tmp:
            tmp.write(archive)
            tmp.seek(0)
            with tarfile.open(fileobj=tmp) as tar:
                tar.extractall(target, filter="data")
    return target / "models"


def sdk_pin(plugin_dir: Path) -> str:
    lock = plugin_dir / "uv.lock"
    if lock.is_file():
        data = tomllib.loads(lock.read_text())
        for package in data.get("package", []):
            if package.get("name") in {"dify-plugin", "dify_plugin"}:
                return str(package.get("version", "?"))
    req = plugin_dir / "requirements.txt"
    if req.is_file():
        for line in req.read_text().splitlines():
            if line.replace("_", "-").lower().startswith("dify-plugin"):
                return line.strip()
    return "?"


def sdist_names(message: str) -> list[str]:
    """The packages a build's missing-wheel error names (``no compatible wheel for NAME ...``)."""
    names = []
    for part in message.split("no compatible wheel for ")[1:]:
        name = part.split()[0] if part.split() else ""
        if name and name not in names:
            names.append(name)
    return names


def uv_binary() -> str:
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except ImportError:
        found = shutil.which("uv")
        if not found:
            raise SystemExit("compat: uv is needed for the SDK reference servers: pip install uv") from None
        return found


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=False, env=env, cwd=ROOT)


def outbound_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[key] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@contextmanager
def serve(build: Path, env: dict[str, str]) -> Iterator[tuple[str, float]]:
    started = time.perf_counter()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*CLI, "serve", str(build), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if line.startswith("serving ") and " at " in line:
                url = line.split(" at ", 1)[1].split()[0]
                break
        if not url:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(tail[-1] if tail else "serve exited before it was ready")
        yield url, 1000 * (time.perf_counter() - started)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def reference_python(plugin_dir: Path, venv: Path) -> Path:
    """A Python 3.12 virtualenv with exactly the plugin's locked (or listed) dependencies."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    uv = uv_binary()
    # The same interpreter the project found for itself; uv must never download one.
    interpreter = subprocess.run(
        [str(ROOT / "scripts" / "find-python")], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.environ["UV_PYTHON_DOWNLOADS"] = "never"
    subprocess.run([uv, "venv", "-q", "--python", interpreter, str(venv)], check=True, capture_output=True)
    if (plugin_dir / "uv.lock").is_file():
        exported = subprocess.run(
            [
                uv,
                "export",
                "--frozen",
                "--format",
                "requirements.txt",
                "--no-dev",
                "--no-emit-project",
                *NO_EXTRAS,
            ],
            cwd=plugin_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        requirements = venv / "requirements.txt"
        requirements.write_text(exported)
    else:
        requirements = plugin_dir / "requirements.txt"
    install = subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), "-r", str(requirements)],
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(install.stderr.strip().splitlines()[-1] if install.stderr.strip() else "uv failed")
    return python


def credential_values(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Credentials that pass the form but point every endpoint at a closed loopback port."""
    values: dict[str, Any] = {}
    for item in fields:
        name = str(item["variable"])
        if item.get("type") == "select" and item.get("options"):
            values[name] = item["options"][0]
        elif any(word in name.lower() for word in ("url", "endpoint", "base", "host")):
            values[name] = UNREACHABLE_URL
        elif "context" in name.lower() or "max" in name.lower() or "size" in name.lower():
            values[name] = "4096"
        else:
            values[name] = "compat-test"
    return values


def requests_for(info: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Requests that need no upstream service, derived from the package's own declarations."""
    out: list[tuple[str, dict[str, Any]]] = []
    prompt = [{"role": "user", "content": "How many tokens is this?"}]
    for provider in info.get("providers", []):
        name = provider["name"]
        predefined: dict[str, list[str]] = provider.get("predefined_models") or {}
        for model_type, models in predefined.items():
            for model in models:
                out.append(
                    (
                        "get_ai_model_schemas",
                        {"provider": name, "model_type": model_type, "model": model, "credentials": {}},
                    )
                )
        model_creds = credential_values(provider.get("model_credentials") or [])
        for model_type in provider.get("model_types", []):
            models = predefined.get(model_type) or ["compat-model"]
            common = {"provider": name, "model_type": model_type, "model": models[0]}
            credentials = model_creds if models[0] == "compat-model" else {}
            if model_type == "llm":
                out.append(
                    (
                        "get_llm_num_tokens",
                        {**common, "credentials": credentials, "prompt_messages": prompt, "tools": []},
                    )
                )
            elif model_type == "text-embedding":
                out.append(
                    (
                        "get_text_embedding_num_tokens",
                        {**common, "credentials": credentials, "texts": ["hello world", "compat"]},
                    )
                )
        if provider.get("provider_credentials"):
            out.append(
                (
                    "validate_provider_credentials",
                    {"provider": name, "credentials": credential_values(provider["provider_credentials"])},
                )
            )
        if provider.get("model_credentials") and provider.get("model_types"):
            out.append(
                (
                    "validate_model_credentials",
                    {
                        "provider": name,
                        "model_type": provider["model_types"][0],
                        "model": "compat-model",
                        "credentials": model_creds,
                    },
                )
            )
    return out


def post(url: str, envelope: dict[str, Any]) -> tuple[int, list[bytes]]:
    response = httpx.post(
        url.rstrip("/") + "/invoke",
        params={"action": envelope["data"]["action"]},
        content=encode_envelope(envelope),
        headers={"Content-Type": "application/json", "Dify-Plugin-Session-ID": envelope["session_id"]},
        timeout=REQUEST_TIMEOUT,
    )
    lines = [line for line in response.content.split(b"\n\n") if line.strip()]
    return response.status_code, lines


def compare(outcome: Outcome, ours_url: str, sdk_url: str, cases: list[tuple[str, dict[str, Any]]]) -> None:
    for index, (action, data) in enumerate(cases):
        envelope = build_envelope(action, data, user_id="compat", session_id=f"compat-{index}")
        outcome.requests += 1
        sdk_status, sdk_lines = post(sdk_url, envelope)
        ours_status, ours_lines = post(ours_url, envelope)
        sdk_events = [normalised(line) for line in sdk_lines]
        ours_events = [normalised(line) for line in ours_lines]
        if any(b'"type":"error"' in line for line in sdk_lines):
            outcome.sdk_errors += 1
        if (sdk_status, sdk_events) == (ours_status, ours_events):
            if (
                ours_lines
                and b'"type":"end"' not in ours_lines[-1]
                and b'"type":"error"' not in ours_lines[-1]
            ):
                outcome.reasons.append(f"{action}: stream did not end in end or a typed error")
                continue
            outcome.matched += 1
            continue
        outcome.reasons.append(
            f"{action} ({data.get('model', data.get('provider'))}): SDK {sdk_status}/{len(sdk_events)} events, "
            f"ours {ours_status}/{len(ours_events)} events, first difference: "
            + first_difference(sdk_events, ours_events)
        )


# Some vendor SDKs put a fresh per-request id into their error text (volcengine's "request_id: ...").
REQUEST_ID = re.compile(r"request_id: [0-9A-Za-z]+")


def normalised(line: bytes) -> str:
    """The line with run-dependent values blanked (a body that is not an event line stays as sent)."""
    try:
        text = normalise_line(line).decode()
    except (ValueError, AssertionError, AttributeError, TypeError):
        text = line.decode(errors="replace")
    return REQUEST_ID.sub("request_id: *", text)


def first_difference(left: list[str], right: list[str]) -> str:
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return f"event {index}: SDK {a[:200]} vs ours {b[:200]}"
    return f"event count {len(left)} vs {len(right)}"


def tiktoken_cache(build: Path) -> Path | None:
    """The artifact's tiktoken cache (unpacked beside the build), so the SDK server counts the same."""
    template = build / "template.yaml"
    artifact = build / "artifact.zip"
    if not template.is_file() or not artifact.is_file() or "TIKTOKEN_CACHE_DIR" not in template.read_text():
        return None
    for line in template.read_text().splitlines():
        if "TIKTOKEN_CACHE_DIR" in line and ":" in line:
            value = line.split(":", 1)[1].strip().strip("'\"")
            relative = value.removeprefix("/var/task/")
            unpacked = build.parent / "unpacked"
            if not unpacked.is_dir():
                shutil.unpack_archive(artifact, unpacked, "zip")
            return unpacked / relative
    return None


def run_plugin(source: Path, work: Path) -> Outcome:
    outcome = Outcome(plugin=source.name, sdk_pin=sdk_pin(source))
    work.mkdir(parents=True, exist_ok=True)
    package = work / f"{source.name}.difypkg"
    done = cli("package", str(source), "-o", str(package))
    if done.returncode != 0:
        return fail(outcome, "package", done.stderr)
    done = cli("inspect", "--json", str(package))
    if done.returncode != 0:
        return fail(outcome, "inspect", done.stderr)
    info = json.loads(done.stdout)
    build = work / "build"
    shutil.rmtree(build, ignore_errors=True)
    started = time.perf_counter()
    done = cli("build", str(package), "-o", str(build), "--arch", "x86_64")
    if done.returncode != 0 and "no compatible wheel for " in done.stderr:
        # The daemon builds sdists; dify-lambda only with the operator's --allow-sdist, which this
        # harness gives for the official plugins it was pointed at (and says so in the table).
        outcome.sdists = sdist_names(done.stderr)
        allow = [arg for name in outcome.sdists for arg in ("--allow-sdist", name)]
        done = cli("build", str(package), "-o", str(build), "--arch", "x86_64", *allow)
    outcome.build_s = time.perf_counter() - started
    if done.returncode != 0:
        return fail(outcome, "build", done.stderr or done.stdout)
    outcome.artifact_mb = (build / "artifact.zip").stat().st_size / 1e6
    env = outbound_env()
    cache = tiktoken_cache(build)
    sdk_env = {k: v for k, v in env.items() if "proxy" in k.lower()}
    if cache is not None:
        sdk_env["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        python = reference_python(source, work / "sdk-venv")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        return fail(outcome, "reference venv", str(exc))
    cases = requests_for(info)
    try:
        with (
            serve(build, env) as (ours_url, ready_ms),
            start_sdk_server(source, env=sdk_env, python=python, timeout=READY_TIMEOUT) as sdk,
        ):
            outcome.ready_ms = ready_ms
            compare(outcome, ours_url, sdk.url, cases)
    except RuntimeError as exc:
        return fail(outcome, "serve", str(exc))
    except SdkServerError as exc:
        return fail(outcome, "SDK server", str(exc))
    except httpx.HTTPError as exc:
        return fail(outcome, "request", f"{type(exc).__name__}: {exc}")
    outcome.result = "pass" if outcome.matched == outcome.requests else "differs"
    return outcome


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_report(path: Path, outcomes: list[Outcome], official: str, total: int) -> None:
    passed = sum(o.passed for o in outcomes)
    lines = [
        "# Compatibility with the official model plugins",
        "",
        "Written by `make compat OFFICIAL=<checkout of langgenius/dify-official-plugins>` (scripts/compat.py).",
        "Each plugin is packaged, built for x86_64 (smoke init included), served with `dify-lambda serve`, and",
        "compared event for event with its own SDK's serverless server on requests that need no upstream:",
        "the schema of every predefined model, `get_*_num_tokens`, and credential validations against an",
        "unreachable endpoint (both servers' outbound connections go to a closed loopback port). `usage.latency`,",
        "`args.traceback` and vendor request ids in error text (`request_id: ...`) are not compared.",
        "*SDK errors* counts the requests on which the plugin's own SDK server answered with an error too",
        "(the same error on both sides counts as a match). A plugin whose dependencies do not fit Lambda's",
        "250 MB unzipped limit even without their bytecode fails its build: it needs a container image,",
        "which dify-lambda does not build. Where a dependency publishes no wheel, the harness builds it",
        "from its sdist with `--allow-sdist` (the operator's choice; the table says so).",
        "",
        f"Checkout: `{official}`. Result: **{passed}/{len(outcomes)}** plugins match on every request"
        + (f" ({len(outcomes)} of the {total} plugins run so far)." if len(outcomes) < total else "."),
        "",
        "| Plugin | SDK pin | Build s | Artifact MB | Ready ms | Requests matched | SDK errors | Result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.plugin} | {o.sdk_pin} | {fmt(o.build_s, '.1f')} | {fmt(o.artifact_mb, '.1f')} | "
            f"{fmt(o.ready_ms, '.0f')} | {o.matched}/{o.requests} | {o.sdk_errors} | {o.result}"
            + (f" (built with --allow-sdist {', '.join(o.sdists)})" if o.sdists else "")
            + " |"
        )
    failures = [o for o in outcomes if not o.passed]
    if failures:
        lines += ["", "## Reasons", ""]
        for o in failures:
            for reason in o.reasons[:5] or [o.result]:
                lines.append(f"- **{o.plugin}**: {reason.replace('|', '/')}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compat", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--official", required=True, type=Path, help="checkout (or git dir) of dify-official-plugins"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated plugin names (default: all under models/)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "compat", help="scratch directory")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "compatibility.md")
    parser.add_argument("--jobs", type=int, default=1, help="plugins handled at once (default 1)")
    parser.add_argument("--resume", action="store_true", help="reuse the outcomes saved in --work")
    args = parser.parse_args(argv)
    if not args.official.exists():
        print(f"compat: error: {args.official} does not exist (set OFFICIAL=<checkout>)", file=sys.stderr)
        return 2
    models = export_models(args.official.resolve(), args.work)
    wanted = {name for name in args.only.split(",") if name}
    plugins = sorted(p for p in models.iterdir() if (p / "manifest.yaml").is_file())
    if wanted:
        plugins = [p for p in plugins if p.name in wanted]
    results: dict[str, Outcome] = {}
    lock = threading.Lock()
    counter = iter(range(1, len(plugins) + 1))

    def one(plugin: Path) -> None:
        saved = args.work / plugin.name / "outcome.json"
        started = time.perf_counter()
        if args.resume and saved.is_file():
            outcome = Outcome(**json.loads(saved.read_text()))
        else:
            outcome = run_plugin(plugin, args.work / plugin.name)
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(dataclasses.asdict(outcome)))
        with lock:
            results[plugin.name] = outcome
            # Written after every plugin, so an interrupted run still leaves its table.
            write_report(args.report, [results[k] for k in sorted(results)], str(args.official), len(plugins))
            print(
                f"[{next(counter)}/{len(plugins)}] {plugin.name}: {outcome.result} "
                f"({outcome.matched}/{outcome.requests} requests, {time.perf_counter() - started:.0f} s)"
                + (f": {outcome.reasons[0]}" if outcome.reasons and not outcome.passed else ""),
                flush=True,
            )

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, plugins))
    outcomes = [results[k] for k in sorted(results)]
    passed = sum(o.passed for o in outcomes)
    print(f"{passed}/{len(outcomes)} plugins match their own SDK; report: {args.report}")
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
