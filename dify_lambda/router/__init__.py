"""dify_lambda.router: dispatch Dify model calls straight to Lambda function URLs, no daemon.

Public names are loaded lazily (PEP 562), so ``import dify_lambda.router`` is cheap and imports
neither httpx's transports nor botocore, boto3 or dify_plugin; botocore is only imported to sign
the first ``iam`` request.

Modules: ``routes`` (route table), ``sources`` (file, SSM parameter, stack outputs, tags, cache), ``client``
(:class:`Router`), ``policy`` (retries and cooldowns), ``events``, ``auth`` (SigV4, secret),
``batching`` (size guard, embedding batches), ``dify`` (Dify integration), ``errors``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dify_lambda.router.call import Timeouts
    from dify_lambda.router.client import Router
    from dify_lambda.router.events import EndEvent, ErrorEvent, Event, StreamEvent
    from dify_lambda.router.policy import RetryPolicy
    from dify_lambda.router.routes import Deployment, Route, RouteTable, RouteTarget
    from dify_lambda.router.sources import (
        RouteCache,
        load_route_file,
        route_loader,
        routes_from_ssm,
        routes_from_stack_outputs,
        routes_from_tags,
    )

__all__ = [
    "Deployment",
    "EndEvent",
    "ErrorEvent",
    "Event",
    "RetryPolicy",
    "Route",
    "RouteCache",
    "RouteTable",
    "RouteTarget",
    "Router",
    "StreamEvent",
    "Timeouts",
    "load_route_file",
    "route_loader",
    "routes_from_ssm",
    "routes_from_stack_outputs",
    "routes_from_tags",
]

_WHERE = {
    "Router": "client",
    "Timeouts": "call",
    "EndEvent": "events",
    "ErrorEvent": "events",
    "Event": "events",
    "StreamEvent": "events",
    "RetryPolicy": "policy",
    "Deployment": "routes",
    "Route": "routes",
    "RouteTable": "routes",
    "RouteTarget": "routes",
    "RouteCache": "sources",
    "load_route_file": "sources",
    "route_loader": "sources",
    "routes_from_ssm": "sources",
    "routes_from_stack_outputs": "sources",
    "routes_from_tags": "sources",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dify_lambda.router' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dify_lambda.router.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
