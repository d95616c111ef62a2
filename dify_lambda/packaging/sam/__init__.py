"""SAM application of a plugin function: spec -> pure renderer -> YAML serializer -> overlay."""

from __future__ import annotations

from dify_lambda.packaging.sam.overlay import deep_merge
from dify_lambda.packaging.sam.render import DEFAULT_LOGICAL_ID, render_sam
from dify_lambda.packaging.sam.samconfig import render_samconfig, stack_name
from dify_lambda.packaging.sam.serialize import load_template, to_yaml

__all__ = [
    "DEFAULT_LOGICAL_ID",
    "deep_merge",
    "load_template",
    "render_sam",
    "render_samconfig",
    "stack_name",
    "to_yaml",
]
