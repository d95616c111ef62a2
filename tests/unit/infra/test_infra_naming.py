"""Function, role and package file names."""

from __future__ import annotations

import re

import pytest

from dify_lambda.infra.errors import FunctionNameError
from dify_lambda.infra.naming import (
    function_name,
    parse_package_filename,
    role_name,
    validate_function_name,
)

VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def test_function_name_is_readable_and_deterministic() -> None:
    assert function_name("langgenius/openai", "0.2.5") == "dify-langgenius-openai-0-2-5"
    assert function_name("langgenius/openai", "0.2.5") == function_name("langgenius/openai", "0.2.5")


def test_per_checksum_name_appends_a_short_checksum() -> None:
    name = function_name("acme/tiny", "1.0.0", "0123456789abcdef" * 4, with_checksum=True)
    assert name == "dify-acme-tiny-1-0-0-01234567"
    with pytest.raises(FunctionNameError, match="checksum is needed"):
        function_name("acme/tiny", "1.0.0", with_checksum=True)


@pytest.mark.parametrize(
    ("plugin_id", "version"),
    [
        ("a" * 64 + "/" + "b" * 200, "1234.5678.9012-prerelease"),
        ("acme.corp/my_plugin", "1.0.0"),
        ("x/y", "0.0.1-beta_1"),
    ],
)
def test_names_are_always_valid_lambda_names(plugin_id: str, version: str) -> None:
    for with_checksum in (False, True):
        name = function_name(plugin_id, version, "f" * 64, with_checksum=with_checksum)
        assert VALID.match(name), name
        assert name.startswith("dify-")


def test_too_long_names_differ_by_checksum() -> None:
    plugin_id = "a" * 64 + "/" + "b" * 200
    one = function_name(plugin_id, "1.0.0", "1" * 64)
    two = function_name(plugin_id, "1.0.0", "2" * 64)
    assert one != two and len(one) == len(two) == 64


def test_plugin_id_must_have_author_and_name() -> None:
    with pytest.raises(FunctionNameError, match="<author>/<name>"):
        function_name("justname", "1.0.0")


def test_validate_function_name() -> None:
    assert validate_function_name("dify-x") == "dify-x"
    with pytest.raises(FunctionNameError, match="must start with 'dify-'"):
        validate_function_name("other")
    with pytest.raises(FunctionNameError, match="1-64 characters"):
        validate_function_name("dify-" + "x" * 60)
    with pytest.raises(FunctionNameError, match="1-64 characters"):
        validate_function_name("dify-a.b")


def test_role_name_fits_iam_limit() -> None:
    assert role_name("dify-acme-tiny-0-0-1") == "dify-lambda-dify-acme-tiny-0-0-1"
    long = role_name("dify-" + "x" * 59)
    assert len(long) == 64
    assert long != role_name("dify-" + "x" * 58 + "y")


def test_parse_package_filename() -> None:
    checksum = "7f277f7a63e36b1b3e9ed53e55daab0b281599d14902664bade86215f5374f06"
    parsed = parse_package_filename(f"langgenius@tavily@0.0.5@{checksum}.difypkg")
    assert (parsed.author, parsed.name, parsed.version, parsed.checksum) == (
        "langgenius",
        "tavily",
        "0.0.5",
        checksum,
    )
    assert parsed.plugin_id == "langgenius/tavily"
    assert parsed.unique_identifier == f"langgenius/tavily:0.0.5@{checksum}"
    assert str(parsed) == f"langgenius@tavily@0.0.5@{checksum}.difypkg"


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "tavily.difypkg",
        "langgenius@tavily@0.0.5.difypkg",
        "langgenius@tavily@0.0.5@NOTHEX.difypkg",
        "langgenius@tavily@latest@" + "a" * 64 + ".difypkg",
        "Lang@tavily@0.0.5@" + "a" * 64 + ".difypkg",
        "../x@tavily@0.0.5@" + "a" * 64 + ".difypkg",
        "langgenius@tavily@0.0.5@" + "a" * 64 + ".zip",
    ],
)
def test_bad_package_filenames_are_refused(filename: str) -> None:
    with pytest.raises(FunctionNameError, match="filename must look like"):
        parse_package_filename(filename)
