"""The suite's own tests: run it on deliberately broken backends and see it fail.

Each scenario runs ``python -m pytest`` on a generated test file in a temporary
directory (the way a third party runs the suite), all scenarios at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent

CONFTEST = '''
import json

import broken_backends
import storage_core
from hypothesis import Phase, settings

# Failing examples need not be shrunk here; that only costs time.
settings.register_profile("selftest", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("selftest")

storage_core.register_plugin(broken_backends, name="broken-backends")

pytest_plugins = ["storage_core_conformance"]

_outcomes = {}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.failed or report.skipped:
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = outcome


def pytest_sessionfinish(session):
    with open("outcomes.json", "w") as f:
        json.dump(_outcomes, f)
'''


def _class(name: str, url: str, body: str = "") -> str:
    return textwrap.dedent(f'''
        class {name}(ConformanceTests):
            @pytest.fixture
            def storage_url(self) -> str:
                return "{url}"
        ''') + textwrap.indent(textwrap.dedent(body), "    ")


BROKEN_CLASSES = (
    _class("TestNoTrim", "broken-notrim://")
    + _class("TestLostWrite", "broken-lostwrite://")
    + _class("TestWrongOrder", "broken-wrongorder://")
    + _class("TestLeaky", "broken-leaky://")
    + _class("TestIndexTrim", "broken-indextrim://")
    + _class("TestRacyPop", "broken-racypop://")
    + _class("TestNoPop", "broken-nopop://")
    + _class("TestOverrides", "memory://", '''
        def test_trim_deletes_older_rows(self) -> None:
            pass

        test_users_never_mix = None
        ''')
    + _class("TestKnownFailures", "broken-notrim://", '''
        known_failures = {
            "test_trim_deletes_older_rows": "this backend never trims",
            "test_async_with": "listed, but the backend passes it",
            "test_bad_id_rejected[empty-user_id]": "listed, but passes",
        }
        ''')
    + _class("TestUnknownKnownFailure", "memory://", '''
        known_failures = {"test_no_such_test": "typo",
                          "test_no_conformance_test_overridden": "a guard"}
        ''')
)

# The tests each broken class must fail (and a few it must pass), by node id.
BROKEN_SELECTION = {
    "TestNoTrim": ["test_trim_deletes_older_rows", "test_trim_pairs_keeps_even_count",
                   "test_random_calls_match_reference", "test_async_with"],
    "TestLostWrite": ["test_concurrent_tasks_append", "test_concurrent_saves_with_trim",
                      "test_trim_deletes_older_rows"],
    "TestWrongOrder": ["test_fetch_limit_only_limits", "test_save_returns_what_fetch_returns",
                       "test_random_calls_match_reference"],
    "TestLeaky": ["test_users_never_mix", "test_random_calls_match_reference"],
    "TestIndexTrim": ["test_trimming_counts_messages_when_indexes_have_gaps",
                      "test_trim_deletes_older_rows"],
    "TestRacyPop": ["test_concurrent_pops_return_each_message_once",
                    "test_pop_returns_the_newest_and_leaves_the_rest"],
    "TestNoPop": ["test_pop_returns_the_newest_and_leaves_the_rest",
                  "test_random_calls_match_reference", "test_async_with"],
    "TestOverrides": ["test_no_conformance_test_overridden", "test_known_failures_name_real_tests"],
    "TestKnownFailures": ["test_trim_deletes_older_rows", "test_async_with",
                          "test_bad_id_rejected", "test_no_conformance_test_overridden"],
    "TestUnknownKnownFailure": ["test_known_failures_name_real_tests",
                                "test_no_conformance_test_overridden"],
}

SCENARIOS: dict[str, tuple[str, str, list[str]]] = {
    # name: (asyncio mode, test classes, extra pytest arguments)
    "memory": ("strict", _class("TestMemory", "memory://"), []),
    "memory-auto-mode": ("auto", _class("TestMemory", "memory://"), []),
    "broken": ("strict", BROKEN_CLASSES, [
        f"test_backend.py::{cls}::{test}"
        for cls, tests in BROKEN_SELECTION.items() for test in tests
    ]),
}


@dataclass
class Run:
    returncode: int
    outcomes: dict[str, str]
    output: str

    def failed(self) -> set[str]:
        return {self._name(k) for k, v in self.outcomes.items() if v == "failed"}

    def with_outcome(self, outcome: str) -> set[str]:
        return {self._name(k) for k, v in self.outcomes.items() if v == outcome}

    @staticmethod
    def _name(nodeid: str) -> str:
        return nodeid.split("::", 1)[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    env = dict(os.environ)
    env.pop("CI", None)
    # With 20, the state machine let the untrimmed backend pass in one CI run
    # once pop joined its rules (fewer of its steps trim and then read).
    env["STORAGE_CORE_CONFORMANCE_EXAMPLES"] = "80"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    procs = {}
    for name, (mode, classes, args) in SCENARIOS.items():
        root = tmp_path_factory.mktemp(name)
        (root / "pytest.ini").write_text(
            f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n")
        (root / "conftest.py").write_text(CONFTEST)
        (root / "test_backend.py").write_text(
            "import pytest\n\nfrom storage_core_conformance import ConformanceTests\n" + classes)
        procs[name] = (root, subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    out = {}
    for name, (root, proc) in procs.items():
        output, _ = proc.communicate(timeout=600)
        outcomes_file = root / "outcomes.json"
        outcomes = json.loads(outcomes_file.read_text()) if outcomes_file.exists() else {}
        out[name] = Run(proc.returncode, outcomes, output)
    return out


@pytest.mark.parametrize("name", ["memory", "memory-auto-mode"])
def test_reference_backend_passes(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.returncode == 0, run.output[-5000:]
    assert len(run.outcomes) > 100
    assert not run.failed()
    skipped = run.with_outcome("skipped")
    assert skipped == {
        "TestMemory::test_data_survives_reopen",
        "TestMemory::test_concurrent_storages_on_one_url",
        "TestMemory::test_concurrent_processes_append",
        "TestMemory::test_concurrent_processes_pop",
    }
    assert "backend declares no shared_across_processes" in run.output
    assert "storage_core conformance" in run.output, "the summary is missing"


def test_ignored_trimming_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert {
        "TestNoTrim::test_trim_deletes_older_rows",
        "TestNoTrim::test_trim_pairs_keeps_even_count",
        "TestNoTrim::test_random_calls_match_reference",
    } <= run.failed(), run.output[-3000:]
    assert "TestNoTrim::test_async_with" in run.with_outcome("passed")


def test_lost_concurrent_write_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert {
        "TestLostWrite::test_concurrent_tasks_append",
        "TestLostWrite::test_concurrent_saves_with_trim",
    } <= run.failed(), run.output[-3000:]
    assert "TestLostWrite::test_trim_deletes_older_rows" in run.with_outcome("passed")


def test_wrong_order_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert {
        "TestWrongOrder::test_fetch_limit_only_limits",
        "TestWrongOrder::test_save_returns_what_fetch_returns[messages]",
        "TestWrongOrder::test_save_returns_what_fetch_returns[pairs]",
        "TestWrongOrder::test_random_calls_match_reference",
    } <= run.failed(), run.output[-3000:]


def test_leak_between_users_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert {
        "TestLeaky::test_users_never_mix",
        "TestLeaky::test_random_calls_match_reference",
    } <= run.failed(), run.output[-3000:]


def test_trim_by_index_arithmetic_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert "TestIndexTrim::test_trimming_counts_messages_when_indexes_have_gaps" in run.failed(), (
        run.output[-3000:])
    assert "TestIndexTrim::test_trim_deletes_older_rows" in run.with_outcome("passed")


def test_non_atomic_pop_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert "TestRacyPop::test_concurrent_pops_return_each_message_once" in run.failed(), (
        run.output[-3000:])
    assert "TestRacyPop::test_pop_returns_the_newest_and_leaves_the_rest" in run.with_outcome(
        "passed")


def test_backend_without_pop_is_still_conformant(runs: dict[str, Run]) -> None:
    """Pop is optional: its tests check the refusal and skip, the rest pass."""
    run = runs["broken"]
    assert "TestNoPop::test_pop_returns_the_newest_and_leaves_the_rest" in run.with_outcome(
        "skipped"), run.output[-3000:]
    assert {"TestNoPop::test_random_calls_match_reference",
            "TestNoPop::test_async_with"} <= run.with_outcome("passed")
    assert "backend implements no pop" in run.output


def test_overriding_a_test_fails_the_guard(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert "TestOverrides::test_no_conformance_test_overridden" in run.failed()
    assert "TestOverrides::test_known_failures_name_real_tests" in run.with_outcome("passed")
    assert "test_trim_deletes_older_rows, test_users_never_mix" in run.output


def test_known_failures_are_strict_xfails(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert "TestKnownFailures::test_trim_deletes_older_rows" in run.with_outcome("xfailed")
    failed = run.failed()
    assert "TestKnownFailures::test_async_with" in failed, "a passing known failure must fail"
    assert "TestKnownFailures::test_bad_id_rejected[empty-user_id]" in failed
    assert "TestKnownFailures::test_bad_id_rejected[empty-session_id]" not in failed
    assert "TestKnownFailures::test_no_conformance_test_overridden" not in failed
    assert "TestUnknownKnownFailure::test_known_failures_name_real_tests" in failed
    assert "TestUnknownKnownFailure::test_no_conformance_test_overridden" not in failed
    assert "test_no_conformance_test_overridden, test_no_such_test" in run.output
