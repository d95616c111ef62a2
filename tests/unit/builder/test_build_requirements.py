"""Requirement selection, normalization and the cache key (pure)."""

from __future__ import annotations

import pytest

from dify_lambda.errors import DependencyResolutionError
from dify_lambda.packaging.build.options import BuildOptions, Target
from dify_lambda.packaging.build.requirements import cache_key, combined, normalize_lines, select_requirements
from dify_lambda.packaging.build.steps import dependency_cache_key
from dify_lambda.packaging.errors import PackageError, RequirementError


def reader(files: dict[str, str]):
    return lambda name: files[name].encode() if name in files else None


def test_normalize_drops_comments_and_blank_lines() -> None:
    text = "# header\n\ndify_plugin>=0.10,<0.11   # the SDK\n  httpx  ==  0.28.1\n"
    assert normalize_lines(text) == ("dify_plugin<0.11,>=0.10", "httpx==0.28.1")


def test_extras_and_markers_are_kept_in_canonical_form() -> None:
    text = "\ufeffvolcengine-python-sdk[ark] >=5.0.28 ; python_version >= '3.12'\r\nA.B_c\n"
    assert normalize_lines(text) == ('volcengine-python-sdk[ark]>=5.0.28; python_version >= "3.12"', "A.B_c")


# The hostile corpus at the parser: (line 2 of requirements.txt, what the one-line message says).
# The secret-looking values must never appear in the message.
HOSTILE_LINES = [
    ("-e .", "pip options are not accepted"),
    ("--index-url https://SECRET.example/simple", "pip options are not accepted"),
    ("--extra-index-url=https://SECRET.example", "pip options are not accepted"),
    ("--extra-index=http://SECRET.example", "pip options are not accepted"),
    ("-ihttp://SECRET.example/simple", "pip options are not accepted"),
    ("-fhttp://SECRET.example/links", "pip options are not accepted"),
    ("-r/proc/self/environ", "pip options are not accepted"),
    ("-c SECRET.txt", "pip options are not accepted"),
    ("--hash=sha256:SECRET", "pip options are not accepted"),
    ("  --trusted-host SECRET.example", "pip options are not accepted"),
    ("--no-binary=:all:", "pip options are not accepted"),
    ("evilpkg @ http://SECRET.example/evilpkg-1.0.tar.gz", "evilpkg: direct URL, VCS and path references"),
    ("evilpkg @ git+https://SECRET.example/x.git", "evilpkg: direct URL, VCS and path references"),
    ("evilpkg @ file:///tmp/SECRET", "evilpkg: direct URL, VCS and path references"),
    ("git+https://SECRET.example/x.git#egg=evil", "local paths, URLs and VCS references"),
    ("https://SECRET.example/evil-1.0-py3-none-any.whl", "local paths, URLs and VCS references"),
    ("./SECRET", "local paths, URLs and VCS references"),
    ("/tmp/SECRET.tar.gz", "local paths, URLs and VCS references"),
    ("evil==1.0 --hash=sha256:SECRET", "per-requirement options"),
    ("evil==1.0 --config-settings=SECRET", "per-requirement options"),
    ("evil==1.0 \\", "line continuations are not accepted"),
    ("evil==${SECRET}", "environment variable references"),
    ('evil ; os_name == "${SECRET}"', "environment variable references"),
    ('evil ; os_name == " --index-url=http://SECRET.example"', "evil: a marker value holds characters"),
    ("evil===SECRET\x00", "control character"),
    ("SECRET is not a requirement", "not a PEP 508 requirement"),
    ("x" * 5000, "line longer than 4096 characters"),
    ("evil ; " + "(" * 1500 + 'os_name == "SECRET"' + ")" * 1500, "not a PEP 508 requirement"),
    (" " * 4000 + "SECRET !", "not a PEP 508 requirement"),
]


@pytest.mark.parametrize(("line", "message"), HOSTILE_LINES)
def test_hostile_lines_are_refused_with_one_line(line: str, message: str) -> None:
    with pytest.raises(RequirementError) as info:
        normalize_lines("dify_plugin\n" + line + "\n")
    text = str(info.value)
    assert isinstance(info.value, DependencyResolutionError)
    assert text.startswith("requirements.txt:2: ")
    assert message in text
    assert "\n" not in text
    assert "SECRET" not in text
    assert "xxxxxxxxxx" not in text


def test_undecodable_bytes_name_the_line() -> None:
    with pytest.raises(RequirementError, match=r"^requirements\.txt:3: not UTF-8$"):
        normalize_lines(b"dify_plugin\nhttpx\nSECRET\xff\xfe\n")


def test_absurd_sizes_are_refused() -> None:
    with pytest.raises(RequirementError, match=r"^requirements\.txt: larger than 256 KiB$"):
        normalize_lines(b"a\n" * 200_000)
    with pytest.raises(RequirementError, match=r"^requirements\.txt: more than 1000 requirements$"):
        normalize_lines("".join(f"p{i}\n" for i in range(1001)))


def test_pyproject_entries_pass_the_same_gate() -> None:
    pyproject = '[project]\nname = "d"\ndependencies = ["httpx", "evil @ https://SECRET.example/e.whl"]\n'
    with pytest.raises(RequirementError) as info:
        select_requirements(reader({"pyproject.toml": pyproject}))
    assert str(info.value) == (
        "pyproject.toml [project].dependencies entry 2: evil: direct URL, VCS and path references are "
        "refused: name a version and let the build's package index provide it"
    )
    with pytest.raises(RequirementError, match="entry 1: line break"):
        select_requirements(reader({"pyproject.toml": '[project]\ndependencies = ["a\\n-r /etc/x"]\n'}))
    with pytest.raises(RequirementError, match=r"^pyproject\.toml:1: not UTF-8$"):
        select_requirements(lambda name: b"\xff" if name == "pyproject.toml" else None)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ('{ git = "https://SECRET.example/x.git" }', "git"),
        ('{ url = "https://SECRET.example/x.tar.gz" }', "url"),
        ('{ path = "/tmp/SECRET" }', "path"),
        ('{ directory = "../SECRET" }', "directory"),
        ('{ editable = "../SECRET" }', "editable"),
    ],
)
def test_uv_lock_non_registry_sources_are_refused(source: str, kind: str) -> None:
    lock = f"""
[[package]]
name = "demo"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "evil" }}]

[[package]]
name = "evil"
version = "1.0"
source = {source}
"""
    with pytest.raises(RequirementError) as info:
        select_requirements(reader({"uv.lock": lock}))
    assert str(info.value) == (
        f"uv.lock: package evil comes from a {kind} source; only packages from a package index are accepted"
    )


@pytest.mark.parametrize(
    "lock",
    [
        '[[package]]\nname = "demo"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "-r/proc/self/environ" }]\n'
        '[[package]]\nname = "-r/proc/self/environ"\nversion = "1"\nsource = { registry = "x" }\n',
        '[[package]]\nname = "demo"\nsource = { virtual = "." }\ndependencies = [{ name = "e" }]\n'
        '[[package]]\nname = "e"\nversion = "1 --index-url http://SECRET.example"\n'
        'source = { registry = "x" }\n',
    ],
)
def test_uv_lock_derived_lines_pass_the_gate(lock: str) -> None:
    with pytest.raises(RequirementError) as info:
        select_requirements(reader({"uv.lock": lock}))
    assert str(info.value).startswith("uv.lock (derived):1: ")
    assert "SECRET" not in str(info.value) and "environ" not in str(info.value)


@pytest.mark.parametrize("lock", ["package = 3", '[[package]]\nversion = "1"\n', "package = [1, 2]"])
def test_uv_lock_with_a_foreign_structure_is_one_line(lock: str) -> None:
    with pytest.raises(PackageError, match=r"^uv\.lock: "):
        select_requirements(reader({"uv.lock": lock}))


def test_requirements_txt_wins_over_uv_lock() -> None:
    chosen = select_requirements(reader({"requirements.txt": "dify_plugin\n", "uv.lock": "garbage"}))
    assert chosen.source == "requirements.txt"
    assert chosen.lines == ("dify_plugin",)


def test_uv_lock_closure_is_pinned() -> None:
    lock = """
version = 1
[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "dify-plugin" }]
[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "dify-plugin"
version = "0.10.2"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "httpx" }]

[[package]]
name = "httpx"
version = "0.28.1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "8.0.0"
source = { registry = "https://pypi.org/simple" }
"""
    chosen = select_requirements(reader({"uv.lock": lock, "pyproject.toml": '[project]\nname = "demo"\n'}))
    assert chosen.source == "uv.lock"
    assert chosen.lines == ("dify-plugin==0.10.2", "httpx==0.28.1")


def test_pyproject_dependencies_when_nothing_else() -> None:
    pyproject = '[project]\nname = "demo"\ndependencies = ["dify_plugin>=0.10,<0.11", "httpx"]\n'
    chosen = select_requirements(reader({"pyproject.toml": pyproject}))
    assert chosen.source == "pyproject.toml"
    assert chosen.lines == ("dify_plugin<0.11,>=0.10", "httpx")


def test_no_requirement_source_is_an_error() -> None:
    with pytest.raises(DependencyResolutionError, match=r"no requirements\.txt, uv\.lock or pyproject\.toml"):
        select_requirements(reader({}))


def test_combined_appends_runtime_lines_once() -> None:
    assert combined(["a", "b"], ["b", "c"]) == ("a", "b", "c")
    assert combined(["pydantic<3,>=2.11"], ["pydantic>=2.11,<3"]) == ("pydantic<3,>=2.11",)


def test_cache_key_ignores_order_and_whitespace() -> None:
    assert cache_key(["a", "b  >=1"], "3.12", "x86_64") == cache_key(["b >=1", "a"], "3.12", "x86_64")


@pytest.mark.parametrize(
    "changed",
    [
        (["a", "c"], "3.12", "x86_64"),
        (["a", "b"], "3.13", "x86_64"),
        (["a", "b"], "3.12", "arm64"),
    ],
)
def test_cache_key_changes_with_each_input(changed: tuple[list[str], str, str]) -> None:
    assert cache_key(*changed) != cache_key(["a", "b"], "3.12", "x86_64")


def test_cache_key_changes_with_extra() -> None:
    base = cache_key(["a"], "3.12", "x86_64", {"compile": "True"})
    assert base != cache_key(["a"], "3.12", "x86_64", {"compile": "False"})


def test_dependency_cache_key_covers_every_operator_choice() -> None:
    target = Target("x86_64", "3.12", 256, 900, "AWS_IAM")
    lines = ("dify_plugin<0.11,>=0.10",)
    base = dependency_cache_key(target, lines, BuildOptions())
    changed = [
        BuildOptions(resolver="pip"),
        BuildOptions(allow_sdist=("h5pure",)),
        BuildOptions(index_url="http://127.0.0.1:9/simple"),
        BuildOptions(extra_index_urls=("http://127.0.0.1:9/more",)),
        BuildOptions(compile=False),
    ]
    keys = {dependency_cache_key(target, lines, options) for options in changed}
    assert base not in keys
    assert len(keys) == len(changed)
    same = dependency_cache_key(target, lines, BuildOptions(allow_sdist=("B_x", "a")))
    assert same == dependency_cache_key(target, lines, BuildOptions(allow_sdist=("a", "b-X")))
