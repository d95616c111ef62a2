"""The one error tree of dify-lambda.

Every error the project raises on purpose derives from :class:`DifyLambdaError`. Each part adds its
leaves in its own ``errors`` module, under the branch named here, so a caller can catch a whole part
with one ``except``::

    DifyLambdaError
    ├── UsageError              a command-line option or argument is invalid (CLI exit 2)
    ├── PackageError            bad .difypkg or plugin directory (CLI exit 2)
    │   ├── UnsafePackageError      traversal, symlink, zip bomb, duplicate or encrypted entry
    │   ├── ManifestError           missing/invalid manifest or provider/model YAML
    │   ├── PackageTooLargeError    over the uncompressed cap
    │   └── SignatureError          missing or bad signature (verify exits 1)
    ├── BuildError              the builder could not produce an artifact or template
    │   ├── UnsupportedTargetError   unknown architecture or Python
    │   ├── DependencyResolutionError no compatible wheel / resolver failure
    │   └── ArtifactTooLargeError    over Lambda's 250 MB unzipped limit
    ├── HandlerError            raised inside the Lambda handler process
    │   ├── PluginLoadError          the plugin could not be loaded at init
    │   ├── RequestError             a request is malformed (answered with a 4xx)
    │   └── AuthError                missing/invalid secret or caller not allowed (401/403)
    ├── RouterError             see dify_lambda.router.errors for its full subtree
    └── InfraError              deploy, route publication and connector failures
        └── DeployError

Messages name what is wrong and where (file, field, entry, flag); they never contain credentials,
prompt text or payload contents.
"""

from __future__ import annotations

__all__ = [
    "ArtifactTooLargeError",
    "AuthError",
    "BuildError",
    "DependencyResolutionError",
    "DeployError",
    "DifyLambdaError",
    "HandlerError",
    "InfraError",
    "ManifestError",
    "PackageError",
    "PackageTooLargeError",
    "PluginLoadError",
    "RequestError",
    "RouterError",
    "SignatureError",
    "UnsafePackageError",
    "UnsupportedTargetError",
    "UsageError",
]


class DifyLambdaError(Exception):
    """Root of every error dify-lambda raises on purpose."""


class UsageError(DifyLambdaError):
    """A command-line option or argument is invalid; found before any long work starts."""


class PackageError(DifyLambdaError):
    """A .difypkg or plugin directory is invalid."""


class UnsafePackageError(PackageError):
    """A package entry is unsafe: traversal, absolute path, symlink, duplicate, encrypted, or a bomb."""


class ManifestError(PackageError):
    """The manifest or a provider/model YAML is missing or does not match its schema."""


class PackageTooLargeError(PackageError):
    """The package exceeds its uncompressed size cap."""


class SignatureError(PackageError):
    """The package signature is missing or does not verify."""


class BuildError(DifyLambdaError):
    """The builder could not produce the artifact or the template."""


class UnsupportedTargetError(BuildError):
    """Unknown architecture or unsupported Python version."""


class DependencyResolutionError(BuildError):
    """Dependencies could not be resolved for the target platform."""


class ArtifactTooLargeError(BuildError):
    """The artifact exceeds Lambda's 250 MB unzipped limit."""


class HandlerError(DifyLambdaError):
    """Raised inside the Lambda handler process."""


class PluginLoadError(HandlerError):
    """The plugin could not be loaded at init."""


class RequestError(HandlerError):
    """A request is malformed; ``status`` is the HTTP status to answer with."""

    status = 400


class AuthError(HandlerError):
    """The caller is not authenticated (401) or not allowed (403)."""

    status = 401


class RouterError(DifyLambdaError):
    """Root of the router's errors (dify_lambda.router.errors)."""


class InfraError(DifyLambdaError):
    """Deploy, route publication and connector failures."""


class DeployError(InfraError):
    """A deployment step failed."""
