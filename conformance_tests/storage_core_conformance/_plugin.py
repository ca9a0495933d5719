"""The pytest hooks of the suite: markers, known failures, and a summary."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Generator

import pytest

from ._suite import GUARDS, ConformanceTests, area_of
from ._support import REQUIRES_MARKER

__all__ = [
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]

_KEY = pytest.StashKey["_Tally"]()


class _Tally:
    """Outcomes of conformance tests, per test class and area."""

    def __init__(self) -> None:
        self.where: dict[str, tuple[str, str]] = {}
        self.outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.skip_reasons: dict[str, Counter[str]] = defaultdict(Counter)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{REQUIRES_MARKER}(*capabilities): the test needs these backend capabilities "
        "(storage_core.Capabilities fields); skipped when the backend declares one false",
    )
    config.stash[_KEY] = _Tally()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tally = config.stash.get(_KEY, None)
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or not issubclass(cls, ConformanceTests):
            continue
        if tally is not None:
            tally.where[item.nodeid] = (cls.__name__, area_of(item))
        if getattr(item, "originalname", item.name) in GUARDS:
            continue  # never an xfail: a guard test reports a known_failures entry for it
        known = cls.known_failures
        reason = known.get(item.name) or known.get(getattr(item, "originalname", item.name))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=f"known failure: {reason}", strict=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    tally = item.config.stash.get(_KEY, None)
    if tally is not None and report.nodeid in tally.where:
        _record(tally, report)
    return report


def _record(tally: _Tally, report: pytest.TestReport) -> None:
    if report.when != "call" and not report.failed and not report.skipped:
        return
    cls, _ = where = tally.where[report.nodeid]
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    else:
        outcome = report.outcome
    if outcome == "skipped" and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        tally.skip_reasons[cls][reason] += 1
    tally.outcomes[where][outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally = terminalreporter.config.stash.get(_KEY, None)
    if tally is None or not tally.outcomes:
        return
    terminalreporter.section("storage_core conformance")
    classes = sorted({cls for cls, _ in tally.outcomes})
    for cls in classes:
        parts = []
        for (c, area), counts in sorted(tally.outcomes.items()):
            if c == cls:
                done = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                parts.append(f"{area}: {done}")
        terminalreporter.write_line(f"{cls}: " + "; ".join(parts))
        for reason, n in sorted(tally.skip_reasons[cls].items()):
            terminalreporter.write_line(f"    {n} skipped: {reason}")
