"""``dify-lambda package / inspect / verify / sign`` run as a user would, in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.pkgfactory import bad_packages, plugin_files, rsa_key_pair, write_tree

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "dify-lambda"
if not CLI.exists():  # a venv elsewhere: the interpreter running the tests has the entry point
    CLI = Path(sys.executable).with_name("dify-lambda")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The session's 2048-bit RSA key pair written as PEM files: (private, public)."""
    private, public = rsa_key_pair(2048)
    d = tmp_path_factory.mktemp("keys")
    (d / "priv.pem").write_bytes(private)
    (d / "pub.pem").write_bytes(public)
    return d / "priv.pem", d / "pub.pem"


def test_package_inspect_sign_verify(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    write_tree(tmp_path / "src", plugin_files())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = tree(tmp_path)
    r = run("package", "src", "-o", "out/tiny.difypkg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("packaged acme/tiny:0.0.1@")
    assert set(tree(tmp_path)) - set(before) == {"out/tiny.difypkg"}  # no temp file left, nothing else

    r = run("inspect", "out/tiny.difypkg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "plugin id      acme/tiny" in r.stdout
    assert "signature      unsigned" in r.stdout
    assert "predefined llm" in r.stdout and "tiny-chat" in r.stdout

    r = run("inspect", "out/tiny.difypkg", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["plugin_id"] == "acme/tiny"
    assert info["unique_identifier"].endswith("@" + info["checksum"])
    assert info["providers"][0]["model_types"] == ["llm"]

    r = run("verify", "out/tiny.difypkg", "--key", public, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0
    assert "not signed (empty zip comment)" in r.stderr

    r = run(
        "sign",
        "out/tiny.difypkg",
        "-p",
        private,
        "-c",
        "partner",
        "-o",
        "out/tiny.signed.difypkg",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    r = run("verify", "out/tiny.signed.difypkg", "--key", public, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "authorized_category partner" in r.stdout

    r = run("inspect", "out/tiny.signed.difypkg", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["signature"]["status"] == "signed"
    assert sorted(p.name for p in out_dir.iterdir()) == ["tiny.difypkg", "tiny.signed.difypkg"]


def test_verify_exit_codes(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, _ = keys
    write_tree(tmp_path / "src", plugin_files())
    assert run("package", "src", "-o", "p.difypkg", cwd=tmp_path).returncode == 0
    assert run("sign", "p.difypkg", "-p", private, "-o", "s.difypkg", cwd=tmp_path).returncode == 0
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    (tmp_path / "other.pem").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    r = run("verify", "s.difypkg", "--key", "other.pem", cwd=tmp_path)
    assert (r.returncode, r.stderr.strip()) == (
        1,
        "dify-lambda: verify failed: s.difypkg: signature does not verify with the given key",
    )
    r = run("verify", "s.difypkg", "--key", "other.pem", "--json", cwd=tmp_path)
    assert r.returncode == 1
    assert json.loads(r.stdout)["verified"] is False
    r = run("verify", "s.difypkg", "--key", "other.pem", "--key", keys[1], cwd=tmp_path)
    assert r.returncode == 0
    assert "treats it as langgenius" in r.stdout
    r = run("verify", "s.difypkg", "--key", "other.pem", "--key", keys[1], "--json", cwd=tmp_path)
    assert (r.returncode, json.loads(r.stdout)["verified"]) == (0, True)
    r = run("verify", "s.difypkg", "--key", "missing.pem", cwd=tmp_path)
    assert (r.returncode, r.stderr.strip()) == (
        2,
        "dify-lambda: error: missing.pem: cannot read key (No such file or directory)",
    )
    (tmp_path / "junk.pem").write_text("junk")
    r = run("verify", "s.difypkg", "--key", "junk.pem", cwd=tmp_path)
    assert (r.returncode, r.stderr.strip()) == (2, "dify-lambda: error: junk.pem: not a PEM public key")


CLI_CASES = {c.id: c for c in bad_packages()}


@pytest.mark.parametrize(
    "case_id",
    ["not-a-zip", "traversal", "symlink", "zip-bomb", "manifest-field-missing", "manifest-nested-20000-flow"],
)
def test_bad_packages_exit_2_with_one_line(tmp_path: Path, keys: tuple[Path, Path], case_id: str) -> None:
    case = CLI_CASES[case_id]
    (tmp_path / "bad.difypkg").write_bytes(case.data)
    before = tree(tmp_path)
    for args in (("inspect", "bad.difypkg"), ("verify", "bad.difypkg", "--key", keys[1])):
        r = run(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("dify-lambda: error: ")
        assert case.fragment in lines[0]
    assert tree(tmp_path) == before


def test_package_bad_directory_writes_nothing(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", plugin_files(provider__tiny_dot_py=None))
    out = tmp_path / "out"
    out.mkdir()
    before = tree(tmp_path)
    r = run("package", src, "-o", out / "x.difypkg", cwd=out)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "dify-lambda: error: provider/tiny.yaml: extra.python.provider_source: "
        "'provider/tiny.py' not found in the package"
    ]
    assert tree(tmp_path) == before
    assert list(out.iterdir()) == []


def test_package_size_cap(tmp_path: Path) -> None:
    files = {**plugin_files(), "_assets/big.bin": bytes(range(256)) * 8192}
    write_tree(tmp_path / "src", files)
    r = run("package", "src", "-o", "x.difypkg", "--max-size", "1", cwd=tmp_path)
    assert r.returncode == 2
    (line,) = r.stderr.splitlines()
    assert (
        "over the limit of 1048576 bytes (--max-size 1 MB); largest files: _assets/big.bin (2.0 MB)" in line
    )
    assert not (tmp_path / "x.difypkg").exists()
    r = run("package", "src", "-o", "x.difypkg", "--max-size", "0", cwd=tmp_path)
    assert r.returncode == 2
    assert "--max-size must be positive" in r.stderr


MOCKGPT = ROOT / "plugins" / "mockgpt"


@pytest.mark.skipif(not (MOCKGPT / "manifest.yaml").exists(), reason="plugins/mockgpt not present")
def test_package_and_inspect_mockgpt(tmp_path: Path) -> None:
    r = run("package", MOCKGPT, "-o", tmp_path / "mockgpt.difypkg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("inspect", tmp_path / "mockgpt.difypkg", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["unique_identifier"] == f"{info['plugin_id']}:{info['version']}@{info['checksum']}"
    assert info["providers"], "mockgpt declares at least one model provider"
    assert all(p["model_types"] for p in info["providers"])
    text = run("inspect", tmp_path / "mockgpt.difypkg", cwd=tmp_path).stdout
    assert text.splitlines()[0] == info["unique_identifier"]
    for provider in info["providers"]:
        assert f"provider {provider['name']} " in text
        for models in provider["predefined_models"].values():
            for model in models:
                assert model in text
