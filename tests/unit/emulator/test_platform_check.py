"""The artifact platform check: evidence against this machine and the interpreter serve would use."""

from __future__ import annotations

import pytest

from dify_lambda.emulator.errors import ArtifactPlatformError
from dify_lambda.emulator.platform_check import Evidence, check_platform, report_evidence


def test_matching_or_silent_evidence_passes() -> None:
    evidence = [Evidence("a", "x86_64", "3.12"), Evidence("b", None, None), Evidence("c", "x86_64", None)]
    check_platform(evidence, python="3.12", python_source="build-report.json", arch="x86_64")


def test_another_architecture_is_one_line_naming_the_evidence_and_the_fix() -> None:
    with pytest.raises(ArtifactPlatformError) as err:
        check_platform(
            [Evidence("build-report.json", "arm64", "3.12")], python="3.12", python_source="x", arch="x86_64"
        )
    text = str(err.value)
    assert "\n" not in text
    assert "built for arm64 (build-report.json)" in text and "this machine is x86_64" in text
    assert "--arch x86_64" in text


def test_another_python_names_both_versions() -> None:
    with pytest.raises(ArtifactPlatformError) as err:
        check_platform(
            [Evidence("w/WHEEL", None, "3.13")], python="3.12", python_source="--python", arch="arm64"
        )
    text = str(err.value)
    assert "Python 3.13 (w/WHEEL)" in text and "Python 3.12 (--python)" in text


def test_report_evidence() -> None:
    assert report_evidence(None, "r") is None
    assert report_evidence({"function": {"architecture": "arm64"}, "python": "3.13"}, "r") == Evidence(
        "r", "arm64", "3.13"
    )
    assert report_evidence({"plugin_id": "x"}, "r") == Evidence("r", None, None)
