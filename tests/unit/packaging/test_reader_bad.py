"""The corpus of bad packages: each is rejected with its exact error class and message fragment."""

from __future__ import annotations

import pytest
from support.pkgfactory import BadCase, bad_packages

from dify_lambda.errors import PackageError
from dify_lambda.packaging.reader import PluginPackage

CASES = bad_packages()


def test_corpus_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 15
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_package_is_rejected(case: BadCase) -> None:
    with pytest.raises(PackageError) as info:
        PluginPackage.from_bytes(case.data, name="bad.difypkg", limits=case.limits)
    assert type(info.value) is case.error
    message = str(info.value)
    assert case.fragment in message
    assert "\n" not in message  # one clear line


def test_default_entry_cap_is_ten_thousand() -> None:
    from support.pkgfactory import build_zip, edit, plugin_files

    files = edit(plugin_files(), {f"_assets/n{i}": b"" for i in range(10_000)})
    with pytest.raises(PackageError, match="10008 entries, over the limit of 10000"):
        PluginPackage.from_bytes(build_zip(files))
