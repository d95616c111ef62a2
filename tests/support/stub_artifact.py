"""Hand-made artifacts for the emulator's tests: the artifact layout of docs/architecture.md with a
stub app (tests/support/stub_apps.py, via ``DIFY_LAMBDA_APP_FACTORY``) instead of a plugin runtime."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = 'name: stub\nauthor: tester\nmeta:\n  runner:\n    version: "3.12"\n'
#: The worker environment that makes the streaming loop run the stub app.
STUB_ENV = {"DIFY_LAMBDA_APP_FACTORY": "stub_apps:create"}


def artifact_tree(dest: Path) -> Path:
    pkg = dest / "dify_lambda"
    (pkg / "handlers").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "py.typed"):
        shutil.copy(ROOT / "dify_lambda" / name, pkg / name)
    for name in (
        "__init__.py",
        "errors.py",
        "http.py",
        "stream.py",
        "runtime_api.py",
        "chunked.py",
        "exec_wrapper.sh",
    ):
        shutil.copy2(ROOT / "dify_lambda" / "handlers" / name, pkg / "handlers" / name)
    shutil.copy(ROOT / "tests" / "support" / "stub_apps.py", dest / "stub_apps.py")
    (dest / "plugin").mkdir()
    (dest / "plugin" / "manifest.yaml").write_text(MANIFEST)
    return dest


def zip_tree(tree: Path, archive: Path) -> Path:
    """Zip ``tree`` keeping mode bits (the exec wrapper must stay executable)."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(tree)))
                info.external_attr = (stat.S_IFREG | (path.stat().st_mode & 0o777)) << 16
                zf.writestr(info, path.read_bytes())
    return archive
