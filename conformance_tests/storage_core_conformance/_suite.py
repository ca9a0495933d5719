"""``ConformanceTests``: every part of the suite in one class to subclass."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from storage_core import Capabilities

from ._atomicity import AtomicityTests
from ._bad_input import BadInputTests
from ._concurrency import ConcurrencyTests
from ._contract import ContractTests
from ._declared import DeclarationTests
from ._fixtures import SUITE_FIXTURES, ConformanceFixtures, unopened_backend
from ._isolation import IsolationTests, UnicodeTests
from ._loops import EventLoopTests
from ._paging import PagingTests
from ._pop import PopTests
from ._requests import RequestIdTests
from ._stateful import StatefulTests
from ._stored import StoredFormatTests
from ._support import StorageFactory
from ._table_tools import TableToolsTests
from ._tool_safe import ToolSafeTests

__all__ = [
    "AREAS",
    "COLLECTED",
    "ConformanceTests",
    "known_failure_problems",
    "overridden_tests",
    "unknown_known_failures",
]

AREAS: dict[type, str] = {
    ContractTests: "contract",
    BadInputTests: "bad input",
    IsolationTests: "isolation",
    UnicodeTests: "unicode",
    ConcurrencyTests: "concurrency",
    PopTests: "pop",
    RequestIdTests: "request ids",
    AtomicityTests: "atomicity",
    StoredFormatTests: "stored format",
    DeclarationTests: "declarations",
    PagingTests: "paging",
    StatefulTests: "model-based",
    TableToolsTests: "table tools",
    ToolSafeTests: "tool-safe trim",
    EventLoopTests: "event loops",
}

GUARDS = ("test_no_conformance_test_overridden", "test_known_failures_name_real_tests",
          "test_storage_under_test_is_the_one_the_url_names")

# Not waivable: it is the only test of many rules, so one entry would waive them all.
UNWAIVABLE = ("test_random_calls_match_reference",)

COLLECTED = pytest.StashKey[dict[type, set[str]]]()
"""Names of the collected tests of each ConformanceTests subclass (set by the plugin)."""


class ConformanceTests(
    ContractTests,
    BadInputTests,
    IsolationTests,
    UnicodeTests,
    ConcurrencyTests,
    PopTests,
    RequestIdTests,
    AtomicityTests,
    StoredFormatTests,
    DeclarationTests,
    PagingTests,
    StatefulTests,
    TableToolsTests,
    ToolSafeTests,
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
            f"{type(self).__name__} overrides or deletes conformance tests or suite "
            f"fixtures: {', '.join(overridden)}; declare a divergence in `known_failures` "
            "instead"
        )

    def test_known_failures_name_real_tests(self, request: pytest.FixtureRequest) -> None:
        collected = request.config.stash.get(COLLECTED, {}).get(type(self))
        unknown = unknown_known_failures(type(self))
        assert not unknown, (
            f"{type(self).__name__}.known_failures names no conformance test (or a guard): "
            f"{', '.join(unknown)}"
        )
        problems = [f"{name}: {why}" for name, why in
                    known_failure_problems(type(self), collected).items()]
        assert not problems, (
            f"{type(self).__name__}.known_failures: " + "; ".join(problems))

    def test_storage_under_test_is_the_one_the_url_names(
        self, storage_url: str, storage_options: dict[str, Any],
        storage_factory: StorageFactory, backend_capabilities: Capabilities,
    ) -> None:
        """The storages the tests make are of the backend ``storage_url`` names,
        with the capabilities that backend declares."""
        named = unopened_backend(storage_url, storage_options)
        tested = unopened_backend(storage_factory.url, storage_factory.options)
        assert type(tested) is type(named), (
            f"the tests run on {type(tested).__name__}, but storage_url "
            f"names {type(named).__name__}")
        assert backend_capabilities == named.capabilities, (
            f"backend_capabilities is {backend_capabilities}; the backend declares "
            f"{named.capabilities}")


def _test_names() -> list[str]:
    return sorted(n for n in dir(ConformanceTests) if n.startswith("test_"))


def overridden_tests(cls: type) -> list[str]:
    """The ``test_*`` methods of ConformanceTests, and the suite's fixtures,
    that ``cls`` replaces or deletes."""
    return [
        name for name in [*_test_names(), *SUITE_FIXTURES]
        if _definition(cls, name) is not _definition(ConformanceTests, name)
    ]


def _definition(cls: type, name: str) -> object:
    """The class attribute ``name`` as defined (not as a descriptor gives it)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def unknown_known_failures(cls: type[ConformanceTests]) -> list[str]:
    """Entries of ``cls.known_failures`` that name no (non-guard) test."""
    names = set(_test_names()) - set(GUARDS)
    return sorted(k for k in cls.known_failures if k.split("[", 1)[0] not in names)


def _parametrized(name: str) -> bool:
    marks = getattr(getattr(ConformanceTests, name, None), "pytestmark", [])
    return any(m.name == "parametrize" for m in marks)


def known_failure_problems(
    cls: type[ConformanceTests], collected: set[str] | None = None
) -> dict[str, str]:
    """Entries of ``cls.known_failures`` that waive more (or other) than one
    test: a parametrised test named without its parameters, parameters no
    collected test has, or a test that cannot be waived. ``collected`` is the
    class's collected test names, when known."""
    names = set(_test_names()) - set(GUARDS)
    problems: dict[str, str] = {}
    for entry in sorted(cls.known_failures):
        base, _, params = entry.partition("[")
        if base not in names:
            continue
        bases = {n.partition("[")[0] for n in collected or ()}
        if base in UNWAIVABLE:
            problems[entry] = "the model-based test cannot be waived (it alone checks many rules)"
        elif _parametrized(base) and not params:
            problems[entry] = "names every parametrisation; name one, as test_x[params]"
        elif params and not _parametrized(base):
            problems[entry] = "the test has no parameters"
        elif params and collected is not None and base in bases and entry not in collected:
            problems[entry] = "no such parametrisation"
    return problems


def area_of(item: pytest.Item) -> str:
    """The part of the suite a collected test belongs to."""
    name = getattr(item, "originalname", item.name)
    for mixin, area in AREAS.items():
        if name in vars(mixin):
            return area
    return "guards"
