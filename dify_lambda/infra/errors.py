"""Leaves of the infra branch of the error tree (``InfraError`` in :mod:`dify_lambda.errors`).

::

    InfraError
    ├── DeployError              a deploy step failed (the AWS error code is named, never secrets)
    │   ├── BuildOutputError         a build directory's report is missing, invalid or of another schema
    │   ├── RegionError              no region given and none in the environment
    │   ├── FunctionNameError        an explicit or derived function name is not a valid Lambda name
    │   ├── WaitTimeoutError         the function did not become active/updated in time
    │   └── NoPreviousVersionError   rollback asked for, but the alias already points at the oldest version
    ├── RoutePublishError        the route table file or SSM parameter could not be written
    └── ConnectorError           connector configuration or request problems
        └── LaunchRefusedError       a launch request is refused (bad filename, unverified, checksum mismatch)
"""

from __future__ import annotations

from dify_lambda.errors import DeployError, InfraError

__all__ = [
    "BuildOutputError",
    "ConnectorError",
    "DeployError",
    "FunctionNameError",
    "LaunchRefusedError",
    "NoPreviousVersionError",
    "RegionError",
    "RoutePublishError",
    "WaitTimeoutError",
]


class BuildOutputError(DeployError):
    """A build output directory cannot be deployed: its report is missing, invalid or of another schema."""


class RegionError(DeployError):
    """No AWS region was given (``--region``) and none is set in the environment."""


class FunctionNameError(DeployError):
    """A function name is not a valid Lambda function name."""


class WaitTimeoutError(DeployError):
    """The function did not reach the expected state within the allowed number of polls."""


class NoPreviousVersionError(DeployError):
    """There is no published version older than the one the alias points at."""


class RoutePublishError(InfraError):
    """The route table entry could not be written to its file or SSM parameter."""


class ConnectorError(InfraError):
    """The connector is misconfigured or a request to it is invalid."""


class LaunchRefusedError(ConnectorError):
    """A launch request is refused before anything is built or deployed."""
