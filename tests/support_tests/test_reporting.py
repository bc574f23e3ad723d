"""Failure reports carry the attached process logs, and teardown can tell that a test failed."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INNER_TEST = """
import os
from pathlib import Path

import pytest

from tests.support.reporting import attach_log, phase_failed


@pytest.fixture
def service(request):
    attach_log(request.node, "service log", lambda: "LOG-LINE-42")
    yield
    out = Path(os.environ["REPORTING_OUT"]) / request.node.name
    out.write_text(str(phase_failed(request.node)))


def test_passes(service):
    assert "LOG-LINE-42".endswith("42")


def test_fails(service):
    assert 1 == 2
"""


def test_logs_shown_only_for_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = pytester.mkdir("out")
    monkeypatch.setenv("REPORTING_OUT", str(out))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "tests.support.reporting", "-p", "no:cacheprovider"
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*service log (call)*", "LOG-LINE-42"])
    assert result.stdout.str().count("LOG-LINE-42") == 1
    assert (out / "test_passes").read_text() == "False"
    assert (out / "test_fails").read_text() == "True"
