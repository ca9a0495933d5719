"""The storage_core conformance suite: a pytest plugin every backend runs.

Load it from your top-level ``conftest.py`` (never auto-loaded)::

    pytest_plugins = ["storage_core_conformance"]

and write one test class::

    import pytest
    from storage_core_conformance import ConformanceTests

    class TestMyBackend(ConformanceTests):
        @pytest.fixture
        def storage_url(self, tmp_path) -> str:
            return f"sqlite:///{tmp_path}/chat.db"

        known_failures = {"test_name": "why this backend diverges"}  # optional

Every test makes its own storages with ``storage_core.make_storage(storage_url,
**storage_options, **per_test_options)``, namespaces its ids with a fresh random
prefix and never assumes the database is empty, so ``storage_url`` may return
the same database for every test. Tests needing a capability your backend's
``capabilities`` declare false are skipped with ``backend declares no <name>``.

Fixtures
--------
``storage_url`` (you provide it)
    URL of the database under test.
``storage_options`` (optional override, default ``{}``)
    Extra ``make_storage`` keyword arguments, e.g. ``{"auth_token": ...}``;
    must be picklable (the multi-process test sends them to workers).
``call_timeout`` (optional override, default 60)
    Seconds one storage call may take before the test fails.
``storage_factory`` (provided)
    A :class:`StorageFactory`: ``async with storage_factory.open(**opts) as s``
    gives an initialized :class:`TimedStorage`; ``storage_factory.make()`` an
    unopened one.
``backend_capabilities`` (provided)
    The backend's :class:`storage_core.Capabilities`.
``fresh_ids`` (provided)
    A :class:`FreshIds` namespace: ``fresh_ids("user")``, ``fresh_ids.conv()``.
``raw_rows`` (optional override, default: ``memory://`` only, else None)
    A :data:`RawRows` reader, ``async (storage, conversation) -> [(message_index,
    role, content, timestamp), ...]``, reading the table with your driver; the
    stored-format test compares the JSON text with what storage_core writes.

The provided fixtures (``storage_factory``, ``backend_capabilities``,
``fresh_ids``) must not be overridden, the storages must be of the backend
``storage_url`` names, and a skip, skipif or xfail mark on the class (or
module) waives the suite: each fails a guard test.

Class attributes
----------------
``known_failures: ClassVar[dict[str, str]]``
    Test name (``test_x``, or ``test_x[param]`` for a parametrised test: one
    parametrisation per entry) -> reason. Each is a strict xfail: when the
    backend is fixed the test fails until the entry goes. The model-based
    test cannot be waived. Overriding or deleting a ``test_*`` method fails a
    guard test instead.

Environment
-----------
``STORAGE_CORE_CONFORMANCE_EXAMPLES``
    Examples of the Hypothesis state machine (default 200 with ``CI`` set, else 50).
``STORAGE_CORE_CONFORMANCE_STATS``
    Set to print how the state machine's calls were distributed (by call, and
    on conversations of 6+ messages) at the end of the run.

Marker
------
``@requires("persistent", ...)`` (``pytest.mark.storage_core_requires``) marks
your own extra tests the same way.
"""

from __future__ import annotations

from ._concurrency import append_in_process
from ._plugin import (
    pytest_collection_modifyitems as pytest_collection_modifyitems,
)
from ._plugin import (
    pytest_configure as pytest_configure,
)
from ._plugin import (
    pytest_runtest_makereport as pytest_runtest_makereport,
)
from ._plugin import (
    pytest_terminal_summary as pytest_terminal_summary,
)
from ._pop import pop_in_process
from ._stateful import EXAMPLES_ENV, ConformanceMachine, example_count
from ._suite import ConformanceTests, overridden_tests
from ._support import (
    AUTO_TIMESTAMP_FLOOR,
    CAPABILITY_NAMES,
    Conversation,
    FreshIds,
    RawRow,
    RawRows,
    StorageFactory,
    TimedStorage,
    msg,
    requires,
)

__all__ = [
    "AUTO_TIMESTAMP_FLOOR",
    "CAPABILITY_NAMES",
    "EXAMPLES_ENV",
    "ConformanceMachine",
    "ConformanceTests",
    "Conversation",
    "FreshIds",
    "RawRow",
    "RawRows",
    "StorageFactory",
    "TimedStorage",
    "append_in_process",
    "example_count",
    "msg",
    "overridden_tests",
    "pop_in_process",
    "requires",
]
