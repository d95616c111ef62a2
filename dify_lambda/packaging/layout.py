"""Where build outputs and caches live: the file names of a ``dify-lambda build`` output directory and
the default cache root.

Kept apart from :mod:`dify_lambda.packaging.build` (which re-exports them) so that readers of build
outputs, such as ``dify-lambda serve``, do not import the whole builder on every start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ARTIFACT_FILE", "REPORT_FILE", "SAMCONFIG_FILE", "TEMPLATE_FILE", "default_cache_dir"]

ARTIFACT_FILE = "artifact.zip"
TEMPLATE_FILE = "template.yaml"
SAMCONFIG_FILE = "samconfig.toml"
REPORT_FILE = "build-report.json"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DIFY_LAMBDA_CACHE``, else ``~/.cache/dify-lambda``."""
    env = os.environ if environ is None else environ
    value = env.get("DIFY_LAMBDA_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "dify-lambda"
