"""Polling for function state with an injected sleep and a scripted Lambda client."""

from __future__ import annotations

from typing import Any

import pytest

from dify_lambda.infra.artifact import Progress
from dify_lambda.infra.errors import DeployError, WaitTimeoutError
from dify_lambda.infra.versions import wait_ready


class ScriptedLambda:
    """Answers get_function_configuration from a script of (State, LastUpdateStatus) pairs."""

    def __init__(self, script: list[tuple[str, str]]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def get_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        state, last = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return {"State": state, "LastUpdateStatus": last, "StateReasonCode": "SubnetOutOfIPAddresses"}


class Waiter:
    def __init__(self, lam: ScriptedLambda, sleeps: list[float], max_polls: int) -> None:
        self.lam, self.sleeps, self.max_polls = lam, sleeps, max_polls

    def _wait(self, name: str, what: str, progress: Progress, *, qualifier: str | None = None) -> None:
        wait_ready(
            self.lam,
            name,
            what,
            progress,
            qualifier=qualifier,
            sleep=self.sleeps.append,
            interval=2.0,
            max_polls=self.max_polls,
        )


def deployer(
    script: list[tuple[str, str]], sleeps: list[float], max_polls: int = 10
) -> tuple[Waiter, ScriptedLambda]:
    lam = ScriptedLambda(script)
    return Waiter(lam, sleeps, max_polls), lam


def test_waits_until_active_and_successful() -> None:
    sleeps: list[float] = []
    d, lam = deployer([("Pending", "InProgress"), ("Active", "InProgress"), ("Active", "Successful")], sleeps)
    lines: list[str] = []
    d._wait("dify-x", "update", lines.append, qualifier="3")
    assert sleeps == [2.0, 2.0]
    assert len(lam.calls) == 3
    assert lam.calls[0] == {"FunctionName": "dify-x", "Qualifier": "3"}
    assert len(lines) == 1 and "waiting for update of dify-x" in lines[0]


def test_failed_state_names_the_reason() -> None:
    d, _ = deployer([("Pending", "InProgress"), ("Failed", "Failed")], [])
    with pytest.raises(DeployError, match="creation of dify-x failed: SubnetOutOfIPAddresses"):
        d._wait("dify-x", "creation", lambda _l: None)


def test_gives_up_after_max_polls() -> None:
    sleeps: list[float] = []
    d, _ = deployer([("Pending", "InProgress")], sleeps, max_polls=4)
    with pytest.raises(WaitTimeoutError, match="after 4 polls"):
        d._wait("dify-x", "update", lambda _l: None)
    assert len(sleeps) == 4
