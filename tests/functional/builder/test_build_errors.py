"""Bad inputs give one clear error each; sdists are handled as documented."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from support.pkgfactory import plugin_files

from dify_lambda.errors import ArtifactTooLargeError, DependencyResolutionError, UnsupportedTargetError
from dify_lambda.packaging.build import BuildOptions, build
from dify_lambda.packaging.build.deps import DependencyInstaller, MissingWheelsError, PipResult
from dify_lambda.packaging.build.options import Target
from dify_lambda.packaging.packager import zip_files
from dify_lambda.packaging.reader import PluginPackage

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
X86 = Target("x86_64", "3.12", 256, 900, "AWS_IAM")


def package_from_files(files: dict[str, bytes]) -> PluginPackage:
    """A validated package from in-memory files (as ``dify-lambda package`` would zip them)."""
    return PluginPackage.from_bytes(zip_files(files), name="test.difypkg")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("python", ["3.11", "3.14"])
def test_unsupported_python(python: str, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTargetError) as info:
        build(PLUGINS / "mockgpt", tmp_path, BuildOptions(python=python, cache_dir=tmp_path / "c"))
    assert one_line(info.value).startswith("build:ResolveTarget - --python")
    assert not (tmp_path / "artifact.zip").exists()


def test_unknown_architecture(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTargetError, match="--arch 'ppc64le' is not supported"):
        build(PLUGINS / "mockgpt", tmp_path, BuildOptions(arch="ppc64le", cache_dir=tmp_path / "c"))


def test_just_over_the_limit_fits_without_some_bytecode(built, build_cache: Path, tmp_path: Path) -> None:
    # Sources stay; the biggest dependencies lose their .pyc until the artifact fits, with a note.
    full = built("mockgpt", "x86_64").report.sizes.unzipped
    limit = full - 1024 * 1024
    result = build(
        PLUGINS / "mockgpt",
        tmp_path,
        BuildOptions(arch="x86_64", cache_dir=build_cache, max_unzipped_bytes=limit),
    )
    assert result.report.sizes.unzipped <= limit
    note = next(n for n in result.report.notes if n.startswith("to fit Lambda's unzipped size limit"))
    with zipfile.ZipFile(result.artifact) as zf:
        names = set(zf.namelist())
    for top in note.split("the .pyc files of ", 1)[1].split(" were left out", 1)[0].split(", "):
        assert not any(n.startswith(f"{top}/") and n.endswith(".pyc") for n in names)
        assert any(n.startswith(f"{top}/") and n.endswith(".py") for n in names)
    assert result.report.smoke["status"] == "passed"


def test_oversize_names_the_largest_contributors(build_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactTooLargeError) as info:
        build(
            PLUGINS / "mockgpt", tmp_path, BuildOptions(cache_dir=build_cache, max_unzipped_bytes=1024 * 1024)
        )
    text = one_line(info.value)
    assert text.startswith("build:CheckSize - artifact is ")
    assert "over the 1.0 MB limit" in text
    largest = text.split("largest: ", 1)[1].split(", ")
    assert len(largest) == 10
    assert any(part.startswith("gevent (") for part in largest)


@pytest.mark.slow
def test_package_that_does_not_exist(build_cache: Path, tmp_path: Path) -> None:
    files = plugin_files(requirements_dot_txt=b"dify-lambda-h5-no-such-package-xyz==9.9.9\n")
    with pytest.raises(MissingWheelsError) as info:
        build(package_from_files(files), tmp_path, BuildOptions(cache_dir=build_cache))
    text = one_line(info.value)
    assert "dify-lambda-h5-no-such-package-xyz ==9.9.9 (cp312-manylinux_2_34_x86_64)" in text
    assert "not found on the package index" in text


@pytest.mark.slow
def test_sdist_is_not_built_without_allow_sdist(build_cache: Path, tmp_path: Path) -> None:
    links = tmp_path / "links"
    canary = tmp_path / "canary"
    _sdist(
        links,
        "h5evil",
        {"setup.py": f"open({str(canary)!r}, 'w').close()\nfrom setuptools import setup\nsetup()\n"},
    )
    files = plugin_files(requirements_dot_txt=b"h5evil==1.0\n")
    for resolver in ("uv", "pip"):
        with pytest.raises(MissingWheelsError) as info:
            build(
                package_from_files(files),
                tmp_path / "out",
                BuildOptions(cache_dir=build_cache, find_links=(links,), resolver=resolver),
            )
        text = one_line(info.value)
        assert text.startswith("build:ResolveDependencies - no compatible wheel for h5evil ==1.0"), text
        assert "sdists are built only with --allow-sdist NAME" in text
        assert not canary.exists()


def _sdist(root: Path, name: str, files: dict[str, str]) -> Path:
    """A minimal setuptools sdist ``<name>-1.0.tar.gz`` in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}-1.0.tar.gz"
    base = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n',
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in {**base, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.slow
def test_sdist_with_compiled_code_is_refused(build_cache: Path, tmp_path: Path) -> None:
    links = tmp_path / "links"
    _sdist(
        links,
        "h5cext",
        {
            "setup.py": "from setuptools import setup, Extension\n"
            "setup(ext_modules=[Extension('h5cext._c', ['h5cext/_c.c'])], packages=['h5cext'])\n",
            "h5cext/__init__.py": "",
            "h5cext/_c.c": "#include <Python.h>\n"
            'static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "_c"};\n'
            "PyMODINIT_FUNC PyInit__c(void) { return PyModule_Create(&m); }\n",
        },
    )
    files = plugin_files(requirements_dot_txt=b"h5cext==1.0\n")
    with pytest.raises(MissingWheelsError) as info:
        build(
            package_from_files(files),
            tmp_path / "out",
            BuildOptions(cache_dir=build_cache, find_links=(links,), allow_sdist=("h5cext",)),
        )
    text = one_line(info.value)
    assert text.startswith("build:ResolveDependencies - no compatible wheel for h5cext ==1.0")
    assert "only an sdist" in text


@pytest.mark.slow
def test_pure_python_sdist_is_built_and_shipped(build_cache: Path, tmp_path: Path) -> None:
    links = tmp_path / "links"
    _sdist(links, "h5pure", {"h5pure/__init__.py": "VALUE = 42\n"})
    files = plugin_files(requirements_dot_txt=b"dify_plugin>=0.10,<0.11\nh5pure==1.0\n")
    # plugin_files() is a valid package, not a loadable plugin (its provider has no class): no smoke init.
    options = BuildOptions(cache_dir=build_cache, find_links=(links,), allow_sdist=("H5Pure",), smoke=False)
    result = build(package_from_files(files), tmp_path / "out", options)
    with zipfile.ZipFile(result.artifact) as zf:
        assert zf.read("h5pure/__init__.py") == b"VALUE = 42\n"
    assert any("h5pure-1.0-py3-none-any.whl" in note for note in result.report.notes)
    assert result.report.built_from_source == ("h5pure==1.0",)
    assert result.report.to_dict()["built_from_source"] == ["h5pure==1.0"]
    assert ("h5pure", "1.0") in {(d.name, d.version) for d in result.report.dependencies}


class ScriptedPip:
    """A pip runner that answers from a script and creates the files pip would create."""

    def __init__(self, wheel_name: str) -> None:
        self.wheel_name = wheel_name
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> PipResult:
        args = list(args)
        self.calls.append(args)
        if args[0] == "install":
            links = [args[i + 1] for i, a in enumerate(args) if a == "--find-links"]
            if any(Path(link, self.wheel_name).exists() for link in links):
                return PipResult(0, "Successfully installed")
            return PipResult(1, "ERROR: No matching distribution found for lib==2.0\n")
        if args[0] == "download":
            dest = Path(args[args.index("--dest") + 1])
            (dest / "lib-2.0.tar.gz").write_bytes(b"sdist")
            return PipResult(0, "Saved")
        if args[0] == "wheel":
            out = Path(args[args.index("--wheel-dir") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / self.wheel_name).write_bytes(b"wheel")
            return PipResult(0, "Built")
        raise AssertionError(args)


def test_second_pass_accepts_a_pure_wheel(tmp_path: Path) -> None:
    pip = ScriptedPip("lib-2.0-py3-none-any.whl")
    outcome = DependencyInstaller(X86, resolver="pip", pip=pip, allow_sdist=["LIB"]).install(
        ["lib==2.0"], tmp_path
    )
    assert [c[0] for c in pip.calls] == ["install", "download", "wheel", "install"]
    assert outcome.notes == (
        "built lib-2.0-py3-none-any.whl on this machine from the sdist of lib (--allow-sdist)",
    )
    assert outcome.built_from_source == ("lib==2.0",)
    assert "--no-binary=:all:" in pip.calls[1]


def test_without_allow_sdist_nothing_is_downloaded_or_built(tmp_path: Path) -> None:
    pip = ScriptedPip("lib-2.0-py3-none-any.whl")
    with pytest.raises(MissingWheelsError) as info:
        DependencyInstaller(X86, resolver="pip", pip=pip, allow_sdist=["other"]).install(
            ["lib==2.0"], tmp_path
        )
    assert [c[0] for c in pip.calls] == ["install"]
    assert info.value.missing[0].reason == (
        "no wheel for the target on the package index (sdists are built only with --allow-sdist NAME)"
    )


def test_second_pass_refuses_a_platform_wheel(tmp_path: Path) -> None:
    pip = ScriptedPip("lib-2.0-cp312-cp312-linux_x86_64.whl")
    with pytest.raises(MissingWheelsError) as info:
        DependencyInstaller(X86, resolver="pip", pip=pip, allow_sdist=["lib"]).install(["lib==2.0"], tmp_path)
    assert info.value.missing[0].name == "lib"
    assert info.value.missing[0].version == "==2.0"
    assert "lib-2.0-cp312-cp312-linux_x86_64.whl" in str(info.value)


class MissingEverywherePip:
    """pip that has neither wheels nor sdists for ``ghost-a`` and ``ghost-b``."""

    def __call__(self, args: Sequence[str]) -> PipResult:
        args = list(args)
        if args[0] == "install":
            lines = Path(args[-1]).read_text().split()
            for name in ("ghost-a", "ghost_b"):
                if any(line.startswith(name) for line in lines):
                    return PipResult(1, f"ERROR: No matching distribution found for {name}\n")
            return PipResult(0, "Successfully installed ok")
        if args[0] == "download":
            return PipResult(1, f"ERROR: No matching distribution found for {args[-1]}\n")
        raise AssertionError(args)


def test_every_listed_requirement_without_wheel_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingWheelsError) as info:
        DependencyInstaller(X86, resolver="pip", pip=MissingEverywherePip()).install(
            ["ghost-a>=1", "ok", "ghost_b"], tmp_path
        )
    assert [m.name for m in info.value.missing] == ["ghost-a", "ghost_b"]
    assert all(m.reason.startswith("no wheel for the target") for m in info.value.missing)


class MissingEverywhereUv:
    """uv that finds neither ``ghost-a`` nor ``ghost_b``."""

    def __call__(self, args: Sequence[str]) -> PipResult:
        lines = Path(args[-1]).read_text().split()
        for name in ("ghost-a", "ghost_b"):
            if any(line.startswith(name) for line in lines):
                return PipResult(
                    1,
                    "error: No solution found when resolving dependencies\n"
                    f"  cause: Because {name} was not found in the package registry and you require {name}, "
                    "we can conclude that your requirements are unsatisfiable.\n",
                )
        return PipResult(0, "")


def test_every_listed_requirement_without_wheel_is_named_by_uv(tmp_path: Path) -> None:
    with pytest.raises(MissingWheelsError) as info:
        DependencyInstaller(X86, uv=MissingEverywhereUv()).install(["ghost-a>=1", "ok", "ghost_b"], tmp_path)
    assert [m.name for m in info.value.missing] == ["ghost-a", "ghost_b"]
    assert all(m.reason.startswith("not found on the package index") for m in info.value.missing)


def test_other_pip_failures_are_reported(tmp_path: Path) -> None:
    def pip(args: Sequence[str]) -> PipResult:
        return PipResult(
            1, "Collecting x\nERROR: Cannot install a and b because of conflicting dependencies\n"
        )

    with pytest.raises(DependencyResolutionError, match="conflicting dependencies"):
        DependencyInstaller(X86, resolver="pip", pip=pip).install(["a", "b"], tmp_path)
