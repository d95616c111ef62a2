"""Build a ``.difypkg`` into a deployable Lambda artifact plus a SAM application.

Examples
--------
>>> from dify_lambda.packaging.build import BuildOptions, build
>>> result = build("mockgpt.difypkg", "out/mockgpt", BuildOptions(arch="arm64"))  # doctest: +SKIP
>>> result.artifact, result.report.artifact_sha256  # doctest: +SKIP

Output directory::

    artifact.zip        the Lambda code (deterministic: same inputs, same SHA-256)
    template.yaml       SAM template, CodeUri: artifact.zip
    samconfig.toml      stack name, CAPABILITY_IAM, resolve_s3
    build-report.json   identity, the function spec ``dify-lambda deploy`` creates, sizes,
                        dependencies, timings, cache and compile status, the SDK version, tiktoken
                        data and the smoke init's providers and models

After resolving dependencies the build proves the artifact can start: the resolved ``dify_plugin``
must be inside the handler's range (``CheckSdk``) and, when this host can run the target, the
plugin must load from the unpacked artifact (``SmokeInit``, smoke.py). Only then is the artifact
moved into the output directory, so a failed build leaves nothing deployable behind.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dify_lambda.errors import BuildError
from dify_lambda.packaging.build.app import function_spec, render_application, write_application
from dify_lambda.packaging.build.artifact import (
    ArtifactEntry,
    check_unzipped_size,
    drop_bytecode_to_fit,
    largest_contributors,
    write_zip,
)
from dify_lambda.packaging.build.deps import PipRunner
from dify_lambda.packaging.build.options import BuildOptions, Target, default_cache_dir, resolve_target
from dify_lambda.packaging.build.report import REPORT_FILE, BuildReport, CompileStatus, Dependency, Sizes
from dify_lambda.packaging.build.requirements import combined, select_requirements
from dify_lambda.packaging.build.runtime import collect_runtime_files, runtime_requirements
from dify_lambda.packaging.build.smoke import SmokeResult, check_sdk_range, smoke_init
from dify_lambda.packaging.build.smoke_cache import SmokeCache
from dify_lambda.packaging.build.steps import (
    StepTimer,
    collect_entries,
    resolve_dependencies,
    runtime_package_root,
    scratch_dir,
    stage_files,
)
from dify_lambda.packaging.build.tiktoken_data import (
    TIKTOKEN_ARTIFACT_DIR,
    TIKTOKEN_LAMBDA_DIR,
    TiktokenFiles,
    check_encodings,
    collect_tiktoken_files,
    default_tiktoken_cache,
)
from dify_lambda.packaging.layout import ARTIFACT_FILE, SAMCONFIG_FILE, TEMPLATE_FILE
from dify_lambda.packaging.limits import MIB
from dify_lambda.packaging.reader import PluginPackage

__all__ = [
    "ARTIFACT_FILE",
    "REPORT_FILE",
    "SAMCONFIG_FILE",
    "TEMPLATE_FILE",
    "BuildOptions",
    "BuildReport",
    "BuildResult",
    "Target",
    "build",
    "open_package",
    "target_for",
]

#: The build output directory's files (ARTIFACT_FILE, TEMPLATE_FILE, SAMCONFIG_FILE, REPORT_FILE) are
#: defined in packaging.layout, re-exported here. The deployer and ``dify-lambda serve`` read build
#: outputs by these names.
#: Lambda accepts at most 50 MB (MiB) zipped through the API; larger zips must come from S3
#: (the builder notes it, the deployer switches to an S3 upload).
DIRECT_UPLOAD_LIMIT = 50 * MIB
OVERLAY_NOTE = (
    "--template-overlay shapes template.yaml (sam deploy) only: `dify-lambda deploy` creates the function "
    "from this report's function spec (its --env, --memory and --timeout adjust it)"
)


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    artifact: Path
    template: Path
    samconfig: Path
    report_path: Path
    report: BuildReport


def open_package(package: str | Path | PluginPackage) -> PluginPackage:
    """A :class:`PluginPackage` from a package object, a ``.difypkg`` path or a plugin directory."""
    if isinstance(package, PluginPackage):
        return package
    path = Path(package)
    if path.is_dir():
        return PluginPackage.from_directory(path)
    return PluginPackage.open(path)


def target_for(package: PluginPackage, options: BuildOptions) -> Target:
    """The concrete target of ``options`` for this package's manifest."""
    m = package.manifest
    return resolve_target(
        options,
        declared_arch=list(m.meta.arch),
        runner_version=m.meta.runner.version,
        resource_memory=m.resource.memory,
    )


def _read_root_file(package: PluginPackage) -> Callable[[str], bytes | None]:
    def read(name: str) -> bytes | None:
        return package.read(name) if name in package.entries else None

    return read


def _notes(
    zipped: int, tiktoken: dict[str, object], smoke: SmokeResult, unknown_imports: tuple[str, ...]
) -> list[str]:
    notes: list[str] = []
    if zipped > DIRECT_UPLOAD_LIMIT:
        notes.append(
            f"artifact is {zipped / MIB:.1f} MB zipped, over the 50 MB direct-upload limit: deploy through "
            "S3 (`sam deploy --resolve-s3` does it)"
        )
    if tiktoken.get("status") == "disabled":
        notes.append(
            "built without tiktoken data (--no-tiktoken-data): token counting with tiktoken downloads its "
            "files on first use (needs egress; fails in a VPC without NAT)"
        )
    if smoke.status == "skipped" and smoke.note:
        notes.append(smoke.note)
    if unknown_imports:
        notes.append("runtime imports not shipped by the builder: " + ", ".join(unknown_imports))
    return notes


def _fit_note(uncompiled: list[str]) -> list[str]:
    if not uncompiled:
        return []
    return [
        "to fit Lambda's unzipped size limit, the .pyc files of "
        + ", ".join(uncompiled)
        + " were left out: those packages are compiled in memory at every cold start (slower init)"
    ]


def _tiktoken_entries(files: TiktokenFiles | None) -> list[ArtifactEntry]:
    if files is None:
        return []
    return [
        ArtifactEntry(f"{TIKTOKEN_ARTIFACT_DIR}/{name}", path, path.stat().st_size, False, "data")
        for name, path in sorted(files.files.items())
    ]


def _tiktoken_report(needed: bool, files: TiktokenFiles | None) -> dict[str, object]:
    if not needed:
        return {"status": "not needed"}
    if files is None:
        return {"status": "disabled"}
    return {
        "status": "shipped",
        "encodings": list(files.encodings),
        "dir": TIKTOKEN_LAMBDA_DIR,
        "source": files.source,
        "bytes": files.size,
    }


def build(
    package: str | Path | PluginPackage,
    out_dir: str | Path,
    options: BuildOptions = BuildOptions(),  # noqa: B008 - frozen dataclass, safe as a default
    *,
    progress: Callable[[str], None] | None = None,
    pip: PipRunner | None = None,
    uv: PipRunner | None = None,
) -> BuildResult:
    """Build ``package`` into ``out_dir`` (created) and return what was written.

    Raises a :class:`~dify_lambda.errors.BuildError` subclass (``UnsupportedTargetError``,
    ``DependencyResolutionError``, ``SdkRangeError``, ``TiktokenDataError``/``TiktokenFetchError``,
    ``ArtifactTooLargeError``, ``SmokeInitError``) or a ``PackageError`` with one line naming the step
    and what is wrong. ``pip`` and ``uv`` replace the resolver runners (tests).
    """
    started = time.perf_counter()
    timer = StepTimer(progress or (lambda _line: None))
    out = Path(out_dir)
    with timer.step("ReadPackage", str(package) if not isinstance(package, PluginPackage) else package.name):
        pkg = open_package(package)
    with timer.step("ResolveTarget"):
        target = target_for(pkg, options)
        encodings = check_encodings(options.tiktoken_encodings)
        timer.progress(f"build:ResolveTarget - memory {target.memory_mb} MB: {target.memory_reason}")
    with timer.step("CollectRuntime"):
        runtime = collect_runtime_files(runtime_package_root())
        runtime_lines, unknown_imports = runtime_requirements(runtime.third_party)
    with timer.step("SelectRequirements"):
        chosen = select_requirements(_read_root_file(pkg))
        requirements = combined(chosen.lines, runtime_lines)
    with scratch_dir() as scratch:
        with timer.step("ResolveDependencies", f"{target.runtime} {target.arch}"):
            deps = resolve_dependencies(
                target, requirements, options, scratch, pip=pip, uv=uv, progress=timer.progress
            )
        dists = [Dependency(d["name"], d["version"]) for d in deps.meta.get("distributions", [])]
        with timer.step("CheckSdk"):
            sdk_version = check_sdk_range({d.name: d.version for d in dists})
        needs_tiktoken = any(d.name.lower() == "tiktoken" for d in dists)
        tiktoken_files: TiktokenFiles | None = None
        if needs_tiktoken and options.tiktoken_data:
            with timer.step("TiktokenData", ", ".join(encodings)):
                cache_dir = options.cache_dir or default_cache_dir()
                tiktoken_files = collect_tiktoken_files(
                    encodings,
                    local=options.tiktoken_cache or default_tiktoken_cache(),
                    store=cache_dir / "tiktoken",
                )
        with timer.step("StageFiles"):
            staged = stage_files(pkg, dict(runtime.files), scratch / "stage", target, options)
            entries = collect_entries(scratch / "stage", deps.root) + _tiktoken_entries(tiktoken_files)
        with timer.step("CheckSize"):
            entries, uncompiled = drop_bytecode_to_fit(entries, options.max_unzipped_bytes)
            unzipped = check_unzipped_size(entries, options.max_unzipped_bytes)
        with timer.step("WriteArtifact"):
            built_zip = scratch / ARTIFACT_FILE
            # The dependency tree comes with its files deflated (zipwrite.py): same bytes out.
            zipped, sha256 = write_zip(entries, built_zip, deps.root)
        with timer.step("RenderTemplate"):
            spec = function_spec(target, options, TIKTOKEN_LAMBDA_DIR if tiktoken_files else None)
            files = render_application(pkg, spec, options, ARTIFACT_FILE)
        if options.smoke:
            with timer.step("SmokeInit"):
                smoke = smoke_init(
                    built_zip,
                    target,
                    dict(spec.environment),
                    SmokeCache(options.cache_dir or default_cache_dir()) if options.use_cache else None,
                    sha256,
                )
                timer.progress(
                    "build:SmokeInit - "
                    + (
                        smoke.note
                        if smoke.cached
                        else f"loaded {len(smoke.providers)} provider(s) in {smoke.seconds:.1f} s"
                        if smoke.status == "passed"
                        else smoke.note
                    )
                )
        else:
            smoke = SmokeResult("skipped", "smoke init skipped: --no-smoke")
        out.mkdir(parents=True, exist_ok=True)
        artifact = out / ARTIFACT_FILE
        shutil.move(built_zip, artifact)
        template_path, samconfig_path = write_application(files, out)
    dep_compile = deps.meta.get("compile", {})
    compile_notes = tuple(n for n in (dep_compile.get("note", ""), staged.note) if n)
    by_part = {
        part: sum(e.size for e in entries if e.part == part)
        for part in ("plugin", "dependencies", "runtime", "data")
    }
    tiktoken = _tiktoken_report(needs_tiktoken, tiktoken_files)
    report = BuildReport(
        plugin_id=pkg.plugin_id,
        unique_identifier=pkg.unique_identifier,
        version=str(pkg.manifest.version),
        providers=tuple(p.name for p in pkg.providers),
        checksum=pkg.checksum,
        python=target.python,
        function=spec,
        artifact=ARTIFACT_FILE,
        artifact_sha256=sha256,
        sizes=Sizes(
            unzipped=unzipped,
            zipped=zipped,
            plugin=by_part["plugin"],
            dependencies=by_part["dependencies"],
            runtime=by_part["runtime"],
            largest=tuple(largest_contributors(entries)),
            data=by_part["data"],
        ),
        requirements_source=chosen.source,
        requirements=requirements,
        dependencies=tuple(dists),
        cache_hit=deps.hit,
        cache_key=deps.root.parent.name,
        build_seconds=0.0,
        compile=CompileStatus(
            dependencies=str(dep_compile.get("status", "skipped")),
            plugin_and_runtime=staged.status,
            interpreter=staged.interpreter or dep_compile.get("interpreter"),
            notes=compile_notes,
        ),
        pruned_paths=int(deps.meta.get("pruned_paths", 0)),
        pruned_bytes=int(deps.meta.get("pruned_bytes", 0)),
        notes=(
            *deps.meta.get("notes", []),
            *_notes(zipped, tiktoken, smoke, unknown_imports),
            *_fit_note(uncompiled),
            *([target.python_note] if target.python_note else []),
            *([OVERLAY_NOTE] if options.template_overlay else []),
        ),
        memory_reason=target.memory_reason,
        sdk_version=sdk_version,
        tiktoken=tiktoken,
        smoke=smoke.to_dict(),
        resolver=str(deps.meta.get("resolver", options.resolver)),
        built_from_source=tuple(deps.meta.get("built_from_source", [])),
    )
    report = dataclasses.replace(
        report, build_seconds=round(time.perf_counter() - started, 3), steps=tuple(timer.durations)
    )
    report_path = out / REPORT_FILE
    report_path.write_text(report.to_json(), "utf-8")
    if not artifact.is_file():  # pragma: no cover - write_zip either writes or raises
        raise BuildError(f"{artifact} was not written")
    return BuildResult(out, artifact, template_path, samconfig_path, report_path, report)
