"""Published versions: waiting for a function to be ready, and moving ``live`` back (rollback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dify_lambda.infra.artifact import Progress
from dify_lambda.infra.errors import DeployError, NoPreviousVersionError, WaitTimeoutError
from dify_lambda.infra.models import RollbackResult
from dify_lambda.wire import ALIAS_NAME, TAG_CHECKSUM, TAG_UNIQUE_IDENTIFIER

__all__ = ["published_versions", "rollback", "wait_ready"]


def wait_ready(
    lam: Any,
    name: str,
    what: str,
    progress: Progress,
    *,
    qualifier: str | None,
    sleep: Callable[[float], None],
    interval: float,
    max_polls: int,
) -> None:
    """Poll until the function (or version) is ``Active`` and its last update ``Successful``."""
    kwargs: dict[str, Any] = {"FunctionName": name}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    for poll in range(max_polls):
        cfg = lam.get_function_configuration(**kwargs)
        state = cfg.get("State", "Active")
        last = cfg.get("LastUpdateStatus", "Successful")
        if state == "Failed" or last == "Failed":
            reason = cfg.get("StateReasonCode") or cfg.get("LastUpdateStatusReasonCode") or "unknown"
            raise DeployError(f"{what} of {name} failed: {reason}")
        if state == "Active" and last == "Successful":
            return
        if poll == 0:
            progress(f"waiting for {what} of {name} (state {state}, last update {last})")
        sleep(interval)
    raise WaitTimeoutError(f"{what} of {name} did not finish after {max_polls} polls")


def published_versions(lam: Any, name: str) -> list[int]:
    """The numbered versions of ``name`` (``$LATEST`` excluded)."""
    out: list[int] = []
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
        out.extend(int(v["Version"]) for v in page.get("Versions", []) if v["Version"].isdigit())
    return out


def rollback(lam: Any, name: str, progress: Progress) -> RollbackResult:
    """Point ``live`` at the newest published version older than the one it points at now."""
    try:
        current = lam.get_alias(FunctionName=name, Name=ALIAS_NAME)["FunctionVersion"]
    except lam.exceptions.ResourceNotFoundException as exc:
        raise DeployError(f"function {name} or its alias {ALIAS_NAME} does not exist") from exc
    older = [v for v in published_versions(lam, name) if v < int(current)]
    if not older:
        raise NoPreviousVersionError(
            f"{name}: alias {ALIAS_NAME} is at version {current} and no older published version exists"
        )
    target = str(max(older))
    lam.update_alias(FunctionName=name, Name=ALIAS_NAME, FunctionVersion=target)
    progress(f"alias {ALIAS_NAME} of {name}: {current} -> {target}")
    _retag_identity(lam, name, target)
    return RollbackResult(function_name=name, from_version=current, to_version=target)


def _retag_identity(lam: Any, name: str, version: str) -> None:
    """Make the identity tags describe the version ``live`` now serves.

    The deployer writes the unique identifier into each version's description; ``ls``, the
    connector's lookups and tag-based routing read the tags, which would otherwise keep naming the
    newer package. A later deploy of that package re-tags (the planner sees the difference).
    """
    cfg = lam.get_function_configuration(FunctionName=name, Qualifier=version)
    identifier = str(cfg.get("Description") or "")
    head, sep, checksum = identifier.rpartition("@")
    if not sep or not head or not checksum:
        return  # not published by dify-lambda's deployer: leave the tags alone
    lam.tag_resource(
        Resource=cfg["FunctionArn"].rsplit(":", 1)[0]
        if cfg["FunctionArn"].endswith(f":{version}")
        else cfg["FunctionArn"],
        Tags={TAG_UNIQUE_IDENTIFIER: identifier, TAG_CHECKSUM: checksum},
    )
