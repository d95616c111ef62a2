"""`make demo`: the whole dify-lambda path on the bundled plugins, with no AWS and no Docker.

1. package plugins/mockgpt and plugins/mocklab into .difypkg files and inspect them;
2. build their x86_64 Lambda artifacts (dependencies resolved for Lambda, cached);
3. start `dify-lambda serve` on each artifact: a local function URL that streams;
4. call them through the router exactly as the Dify host would, printing MockGPT's reply word by word
   with the time to the first word and the total, then an embedding, a rerank and a moderation call.

Everything runs under out/demo/; every process started here is stopped before exiting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "demo"
CLI = [sys.executable, "-m", "dify_lambda"]
PLUGINS = ("mockgpt", "mocklab")


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(*args: str) -> str:
    print("$ dify-lambda " + " ".join(args), flush=True)
    proc = subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"demo: `dify-lambda {' '.join(args)}` failed with exit code {proc.returncode}")
    return proc.stdout


@contextmanager
def serve(path: Path) -> Iterator[str]:
    """Start `dify-lambda serve PATH` on a free port and yield its base URL; always stop it."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [*CLI, "serve", str(path), "--port", "0", "--workers", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        url = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            print("   " + line.rstrip(), flush=True)
            if line.startswith("serving ") and " at " in line:
                url = line.split(" at ", 1)[1].split()[0]
                break
        if not url:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise SystemExit(f"demo: `dify-lambda serve {path}` did not become ready")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MOCKGPT_WORD_DELAY", "0.08")

    step("1. package and inspect the demo plugins")
    packages: dict[str, Path] = {}
    for name in PLUGINS:
        pkg = OUT / f"{name}.difypkg"
        run("package", f"plugins/{name}", "-o", str(pkg))
        print(run("inspect", str(pkg)), flush=True)
        packages[name] = pkg

    step("2. build the x86_64 Lambda artifacts")
    builds: dict[str, Path] = {}
    # The demo plugins count tokens themselves: without an offline tiktoken cache
    # ($DIFY_LAMBDA_TIKTOKEN_CACHE), skip tiktoken's files so the demo needs no download from its host.
    tiktoken = [] if os.environ.get("DIFY_LAMBDA_TIKTOKEN_CACHE") else ["--no-tiktoken-data"]
    for name, pkg in packages.items():
        out = OUT / f"build-{name}"
        print(run("build", str(pkg), "-o", str(out), "--arch", "x86_64", *tiktoken), flush=True)
        builds[name] = out

    step("3. serve both artifacts on local function URLs (streaming, no Docker)")
    with serve(builds["mockgpt"]) as gpt_url, serve(builds["mocklab"]) as lab_url:
        routes = {
            "routes": {
                "dify-lambda/mockgpt": {"deployments": [{"url": gpt_url, "auth": "none"}]},
                "dify-lambda/mocklab": {"deployments": [{"url": lab_url, "auth": "none"}]},
            }
        }
        route_file = OUT / "routes.json"
        route_file.write_text(json.dumps(routes, indent=2))
        print(f"   route table: {route_file.relative_to(ROOT)}", flush=True)

        step("4. call through the router, as the Dify host would")
        from dify_lambda.router import Router, load_route_file

        router = Router(load_route_file(route_file))
        credentials = {"api_key": "mock-demo"}
        print("   MockGPT says: ", end="", flush=True)
        started = time.perf_counter()
        first: float | None = None
        usage = None
        for chunk in router.invoke_llm(
            tenant_id="demo-tenant",
            plugin_id="dify-lambda/mockgpt",
            provider="mockgpt",
            model="mockgpt-1",
            credentials=credentials,
            prompt_messages=[{"role": "user", "content": "Tell me about Lambda."}],
            model_parameters={},
            stop=None,
            tools=None,
            stream=True,
            user_id="demo-user",
        ):
            delta = chunk["delta"]
            text = delta["message"].get("content") or ""
            if text and first is None:
                first = time.perf_counter() - started
            print(text, end="", flush=True)
            usage = delta.get("usage") or usage
        total = time.perf_counter() - started
        print(flush=True)
        print(
            f"   time to first word {1000 * (first or total):.0f} ms, total {1000 * total:.0f} ms", flush=True
        )
        if usage:
            print(f"   usage: {usage['total_tokens']} tokens, {usage['total_price']} {usage['currency']}")

        lab = {
            "tenant_id": "demo-tenant",
            "plugin_id": "dify-lambda/mocklab",
            "provider": "mocklab",
            "user_id": "demo-user",
        }
        lab_creds = {"api_key": "mock-demo"}
        emb = router.invoke_text_embedding(
            **lab,
            model="mocklab-embed-64",
            credentials=lab_creds,
            texts=["hello", "world"],
            input_type="document",
        )
        dims = len(emb["embeddings"][0])
        print(
            f"   embedding: {len(emb['embeddings'])} vectors of {dims} dims, usage {emb['usage']['tokens']} tokens"
        )
        rr = router.invoke_rerank(
            **lab,
            model="mocklab-rerank-1",
            credentials=lab_creds,
            query="lambda streaming",
            docs=["cats sleep", "lambda streams responses", "streaming on lambda"],
            score_threshold=None,
            top_n=2,
        )
        print("   rerank: " + ", ".join(f"#{d['index']} {d['score']:.2f}" for d in rr["docs"]))
        flagged = router.invoke_moderation(
            **lab, model="mocklab-moderation-1", credentials=lab_creds, text="this is fine"
        )
        print(f"   moderation: flagged={flagged}")

    step("done: all demo processes stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
