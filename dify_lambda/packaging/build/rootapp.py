"""The repository's root ``template.yaml``/``samconfig.toml``: the generator's output for ``plugins/mockgpt``.

Regenerate with ``python -m dify_lambda.packaging.build.rootapp [REPO_ROOT]`` (a test keeps them in sync).
``CodeUri`` is ``out/mockgpt/artifact.zip``: build first (``dify-lambda build plugins/mockgpt -o
out/mockgpt``), then ``sam validate --lint``, ``sam build`` and ``sam deploy`` from the root. Because
``CodeUri`` is a ``.zip``, ``sam build`` skips the function (no pip, no Python or Docker needed) and
only rewrites the path in ``.aws-sam/build/template.yaml``; ``sam deploy`` uploads the zip unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dify_lambda.packaging.build.app import (
    ApplicationFiles,
    function_spec,
    render_application,
    write_application,
)
from dify_lambda.packaging.build.options import BuildOptions
from dify_lambda.packaging.build.tiktoken_data import TIKTOKEN_LAMBDA_DIR

__all__ = ["ROOT_CODE_URI", "ROOT_PLUGIN", "main", "root_application"]

#: The demo plugin the root template is generated for, and where its build goes.
ROOT_PLUGIN = "plugins/mockgpt"
ROOT_CODE_URI = "out/mockgpt/artifact.zip"


def root_application(repo_root: Path) -> ApplicationFiles:
    """What the repository's root ``template.yaml``/``samconfig.toml`` must contain."""
    from dify_lambda.packaging.build import open_package, target_for

    package = open_package(repo_root / ROOT_PLUGIN)
    options = BuildOptions()
    # dify_plugin depends on tiktoken, so the build ships its files and sets the variable.
    spec = function_spec(target_for(package, options), options, TIKTOKEN_LAMBDA_DIR)
    return render_application(package, spec, options, ROOT_CODE_URI)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    template, samconfig = write_application(root_application(root), root)
    print(f"wrote {template} and {samconfig}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
