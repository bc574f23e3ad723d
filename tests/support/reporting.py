"""Pytest hook that keeps each phase's report and attaches process logs to failing tests."""

from __future__ import annotations

from collections.abc import Callable, Generator

import pytest

LogReader = Callable[[], str]

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_LOGS = pytest.StashKey[list[tuple[str, LogReader]]]()


def attach_log(node: pytest.Item, title: str, read: LogReader) -> None:
    """Show ``read()`` under ``title`` in the report of ``node`` if a phase of it fails."""
    node.stash.setdefault(_LOGS, []).append((title, read))


def phase_failed(node: pytest.Item) -> bool:
    """Tell whether the setup or call phase of ``node`` failed (use in fixture teardown)."""
    reports = node.stash.get(_REPORTS, {})
    return any(rep.failed for rep in reports.values())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    if report.failed:
        for title, read in item.stash.get(_LOGS, []):
            try:
                text = read()
            except Exception as exc:  # a broken log reader must not hide the real failure
                text = f"<could not read log: {exc!r}>"
            report.sections.append((f"{title} ({report.when})", text or "<empty>"))
    return report
