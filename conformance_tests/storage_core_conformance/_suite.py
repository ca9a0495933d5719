"""``ConformanceTests``: every part of the suite in one class to subclass."""

from __future__ import annotations

from typing import ClassVar

import pytest

from ._bad_input import BadInputTests
from ._concurrency import ConcurrencyTests
from ._contract import ContractTests
from ._fixtures import ConformanceFixtures
from ._isolation import IsolationTests, UnicodeTests
from ._loops import EventLoopTests
from ._pop import PopTests
from ._stateful import StatefulTests
from ._table_tools import TableToolsTests

__all__ = ["AREAS", "ConformanceTests", "overridden_tests", "unknown_known_failures"]

AREAS: dict[type, str] = {
    ContractTests: "contract",
    BadInputTests: "bad input",
    IsolationTests: "isolation",
    UnicodeTests: "unicode",
    ConcurrencyTests: "concurrency",
    PopTests: "pop",
    StatefulTests: "model-based",
    TableToolsTests: "table tools",
    EventLoopTests: "event loops",
}

GUARDS = ("test_no_conformance_test_overridden", "test_known_failures_name_real_tests")


class ConformanceTests(
    ContractTests,
    BadInputTests,
    IsolationTests,
    UnicodeTests,
    ConcurrencyTests,
    PopTests,
    StatefulTests,
    TableToolsTests,
    EventLoopTests,
    ConformanceFixtures,
):
    """Subclass this (as ``Test<Backend>``) and define the ``storage_url`` fixture.

    ``known_failures`` maps test names (``test_x`` or ``test_x[param]``) to
    the reason the backend diverges; each becomes a strict xfail, so a fix
    must remove its entry. Overriding or deleting a ``test_*`` method is not
    allowed (a guard test fails naming it).
    """

    known_failures: ClassVar[dict[str, str]] = {}

    def test_no_conformance_test_overridden(self) -> None:
        overridden = overridden_tests(type(self))
        assert not overridden, (
            f"{type(self).__name__} overrides or deletes conformance tests: "
            f"{', '.join(overridden)}; declare a divergence in `known_failures` instead"
        )

    def test_known_failures_name_real_tests(self) -> None:
        unknown = unknown_known_failures(type(self))
        assert not unknown, (
            f"{type(self).__name__}.known_failures names no conformance test (or a guard): "
            f"{', '.join(unknown)}"
        )


def _test_names() -> list[str]:
    return sorted(n for n in dir(ConformanceTests) if n.startswith("test_"))


def overridden_tests(cls: type) -> list[str]:
    """The ``test_*`` methods of ConformanceTests that ``cls`` replaces or deletes."""
    return [
        name for name in _test_names()
        if getattr(cls, name, None) is not getattr(ConformanceTests, name)
    ]


def unknown_known_failures(cls: type[ConformanceTests]) -> list[str]:
    """Entries of ``cls.known_failures`` that name no (non-guard) test."""
    names = set(_test_names()) - set(GUARDS)
    return sorted(k for k in cls.known_failures if k.split("[", 1)[0] not in names)


def area_of(item: pytest.Item) -> str:
    """The part of the suite a collected test belongs to."""
    name = getattr(item, "originalname", item.name)
    for mixin, area in AREAS.items():
        if name in vars(mixin):
            return area
    return "guards"
