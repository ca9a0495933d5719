"""The pytest hooks of the suite: markers, known failures, and a summary."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Generator

import pytest

from ._stateful import CALLS
from ._suite import COLLECTED, GUARDS, ConformanceTests, area_of
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
        self.totals: Counter[str] = Counter()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{REQUIRES_MARKER}(*capabilities): the test needs these backend capabilities "
        "(storage_core.Capabilities fields); skipped when the backend declares one false",
    )
    config.stash[_KEY] = _Tally()


# Before selection (-k, -m) removes items: the guard checks known_failures
# entries against every collected parametrisation.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tally = config.stash.get(_KEY, None)
    collected = config.stash.setdefault(COLLECTED, {})
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or not issubclass(cls, ConformanceTests):
            continue
        collected.setdefault(cls, set()).add(item.name)
        if tally is not None:
            tally.where[item.nodeid] = (cls.__name__, area_of(item))
        if getattr(item, "originalname", item.name) in GUARDS:
            continue  # never an xfail: a guard test reports a known_failures entry for it
        known = cls.known_failures
        reason = known.get(item.name) or known.get(getattr(item, "originalname", item.name))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=f"known failure: {reason}", strict=True))


_WAIVING_MARKS = ("skip", "skipif", "xfail")


# tryfirst: the outermost wrapper, so it sees the report after skip and xfail
# marks were applied.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if getattr(item, "originalname", item.name) in GUARDS:
        _no_waived_guard(item, report)
    tally = item.config.stash.get(_KEY, None)
    if tally is not None and report.nodeid in tally.where:
        _record(tally, report)
    return report


def _no_waived_guard(item: pytest.Item, report: pytest.TestReport) -> None:
    """A guard that a skip or xfail mark (of the class or module: the suite
    puts none on a guard) kept from failing is a failure: such a mark waives
    the whole suite."""
    cls = getattr(item, "cls", None)
    if cls is None or not issubclass(cls, ConformanceTests):
        return
    marks = [m.name for name in _WAIVING_MARKS for m in item.iter_markers(name)]
    waived = report.skipped or hasattr(report, "wasxfail")
    if marks and waived and (report.when == "call" or report.skipped):
        report.outcome = "failed"
        report.longrepr = (
            f"{cls.__name__} carries {', '.join(sorted(set(marks)))} marks: a skip or xfail "
            "of a whole conformance test class (or module) waives the suite; declare one "
            "divergence per test in `known_failures` instead")
        if hasattr(report, "wasxfail"):
            del report.wasxfail


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
    tally.totals[cls] += 1


def _call_distribution(terminalreporter: pytest.TerminalReporter) -> None:
    """How the state machine's calls were distributed ($STORAGE_CORE_CONFORMANCE_STATS)."""
    total = sum(n for call, n in CALLS.items() if " on " not in call and "below" not in call)
    terminalreporter.section("storage_core conformance: model-based calls")
    for call, n in sorted(CALLS.items()):
        terminalreporter.write_line(f"{call}: {n} ({100 * n / max(total, 1):.1f}% of {total})")
    fetches = CALLS["fetch_chat"]
    if fetches:
        terminalreporter.write_line(
            f"fetch_chat on conversations of 6+ messages: "
            f"{100 * CALLS['fetch_chat on 6+'] / fetches:.1f}%; with a limit below the "
            f"length: {100 * CALLS['fetch_chat with a limit below the length'] / fetches:.1f}%")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CALLS:
        _call_distribution(terminalreporter)
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
        reasons = tally.skip_reasons[cls]
        declared = {r: n for r, n in reasons.items() if r.startswith("backend declares no ")}
        if declared:
            names = ", ".join(
                f"no {r.removeprefix('backend declares no ')} ({n})"
                for r, n in sorted(declared.items()))
            terminalreporter.write_line(
                f"    {sum(declared.values())} of {tally.totals[cls]} conformance tests "
                f"skipped because the backend declares {names}")
        for reason, n in sorted(reasons.items()):
            if reason not in declared:
                terminalreporter.write_line(f"    {n} skipped: {reason}")
