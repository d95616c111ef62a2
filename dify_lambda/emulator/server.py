"""``serve()``: start workers and a local function URL for a built artifact or a plugin source."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from dify_lambda import wire
from dify_lambda.emulator.errors import ListenError
from dify_lambda.emulator.function_url import FrontConfig, make_front_server
from dify_lambda.emulator.target import ServeTarget, resolve_target
from dify_lambda.emulator.workers import Worker, WorkerPool, WorkerSpec

__all__ = ["LocalFunctionUrl", "serve"]

DEFAULT_QUEUE_TIMEOUT = 30.0
DEFAULT_FUNCTION_TIMEOUT = 900.0
DEFAULT_READY_TIMEOUT = 120.0


class LocalFunctionUrl:
    """A running emulator: ``url`` accepts requests until :meth:`close` (also a context manager)."""

    def __init__(self, target: ServeTarget, workers: list[Worker], config: FrontConfig, host: str, port: int):
        self.target = target
        self.plugin_id = target.plugin_id
        self.workers = workers
        self._server = make_front_server(host, port, config)
        bound_host, bound_port = self._server.server_address[:2]
        self.host, self.port = str(bound_host), int(bound_port)
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until :meth:`close` is called (from a signal handler or another thread)."""
        while not self._closed.wait(0.5):
            pass

    def close(self) -> None:
        """Stop accepting requests, stop every worker and delete any extracted artifact."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        if self._thread.is_alive():  # shutdown() would wait forever on a server never started
            self._server.shutdown()
        self._server.server_close()
        for worker in self.workers:
            worker.close()
        self.target.cleanup()

    def __enter__(self) -> LocalFunctionUrl:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serve(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int = 1,
    *,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    env_vars: Mapping[str, Mapping[str, str]] | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
    function_timeout: float = DEFAULT_FUNCTION_TIMEOUT,
) -> LocalFunctionUrl:
    """Serve ``path`` (built artifact zip/directory or plugin source directory) on a local function URL.

    Returns once every worker has finished its init (raises :class:`WorkerStartError` naming the
    init error otherwise). ``env`` adds to or overrides the workers' environment (which starts from
    this process's); ``PYTHONPATH`` entries are appended after the artifact root. Workers answer one
    request at a time; a request waits up to ``queue_timeout`` seconds for one, then gets a 429.
    ``env_vars`` (a loaded ``--env-vars`` file) overrides the template's variables, below ``env``
    (see ``function_env``); zips are unpacked once per sha256 under ``cache_dir`` (see ``unpack``).

    Examples
    --------
    >>> with serve("plugins/mockgpt", workers=2) as fn:  # doctest: +SKIP
    ...     httpx.get(fn.url + "/health")
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    target = resolve_target(
        Path(path), python=python, env_vars=env_vars, env=env, cache_dir=cache_dir, use_cache=use_cache
    )
    try:
        worker_env = _worker_env(target, env)
        spec = WorkerSpec(
            command=target.command,
            env=worker_env,
            cwd=str(target.cwd),
            function_name=worker_env["AWS_LAMBDA_FUNCTION_NAME"],
        )
        pool_workers = [Worker(spec, i) for i in range(workers)]
    except BaseException:
        target.cleanup()
        raise
    auth = (worker_env.get(wire.ENV_URL_AUTH) or "AWS_IAM").strip().upper()
    url_id = hashlib.sha256(target.plugin_id.encode()).hexdigest()[:32]
    config = FrontConfig(WorkerPool(pool_workers), auth, queue_timeout, function_timeout, url_id)
    try:
        running = LocalFunctionUrl(target, pool_workers, config, host, port)
    except OSError as exc:  # port in use, unknown host, address not local, ...
        for worker in pool_workers:
            worker.close()
        target.cleanup()
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    try:
        for worker in pool_workers:
            worker.ensure_started()
        for worker in pool_workers:
            worker.wait_ready(DEFAULT_READY_TIMEOUT)
        running._thread.start()
    except BaseException:
        running.close()
        raise
    return running


def _worker_env(target: ServeTarget, extra: Mapping[str, str] | None) -> dict[str, str]:
    name = "dify-lambda-local-" + target.plugin_id.replace("/", "-")
    env = dict(os.environ)
    if target.kind == "artifact":
        # The artifact brings its own packages and plugin root, as in Lambda.
        for key in ("VIRTUAL_ENV", "PYTHONHOME", wire.ENV_PLUGIN_ROOT):
            env.pop(key, None)
    # What Lambda sets for every function (the region is only a default: the user's wins).
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": name[:64],
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name[:64]}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            wire.ENV_STREAMING: "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(target.env)
    for key, value in (extra or {}).items():
        if key == "PYTHONPATH" and env.get("PYTHONPATH"):
            env[key] = os.pathsep.join([env["PYTHONPATH"], value])
        else:
            env[key] = value
    return env
