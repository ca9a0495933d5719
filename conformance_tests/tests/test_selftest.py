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
    + _class("TestForgetful", "broken-forgetful://")
    + _class("TestUserWideIds", "broken-userwideids://")
    + _class("TestPageDup", "broken-pagedup://")
    + _class("TestBeforeIncl", "broken-beforeincl://")
    + _class("TestNoPaging", "broken-nopaging://")
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
    "TestPageDup": ["test_session_pages_concatenate_to_the_full_listing",
                    "test_fetch_before_index_windows"],
    "TestBeforeIncl": ["test_fetch_before_index_windows", "test_fetch_before_index_after_a_trim",
                       "test_session_pages_concatenate_to_the_full_listing"],
    "TestNoPaging": ["test_session_pages_concatenate_to_the_full_listing",
                     "test_session_cursor_is_a_position_in_the_order",
                     "test_session_pages_see_deletes_and_new_activity",
                     "test_fetch_before_index_windows", "test_fetch_before_index_after_a_trim",
                     "test_fetch_before_index_with_trim_pairs", "test_bad_paging_input_rejected"],
    "TestForgetful": ["test_a_repeated_request_is_not_stored_again",
                      "test_a_repeated_pop_pops_nothing_more",
                      "test_concurrent_repeats_store_once"],
    "TestUserWideIds": ["test_request_ids_belong_to_one_conversation"],
    "TestOverrides": ["test_no_conformance_test_overridden", "test_known_failures_name_real_tests"],
    "TestKnownFailures": ["test_trim_deletes_older_rows", "test_async_with",
                          "test_bad_id_rejected", "test_no_conformance_test_overridden"],
    "TestUnknownKnownFailure": ["test_known_failures_name_real_tests",
                                "test_no_conformance_test_overridden"],
}

# One broken backend per bug that a whole earlier suite let through.
EDITION2_CLASSES = (
    _class("TestRowByRow", "broken-rowbyrow://")
    + _class("TestTrimAfter", "broken-trimafter://")
    + _class("TestStaleIndex", "broken-staleindex://")
    + _class("TestCaseRoles", "broken-caseroles://")
    + _class("TestPrefixKeys", "broken-prefixkeys://")
    + _class("TestReencoding", "broken-reencoding://")
    + textwrap.dedent('''
        class TestFileShared(ConformanceTests):
            @pytest.fixture
            def storage_url(self, tmp_path) -> str:
                return f"broken-fileshared://{tmp_path}/rows.pickle"
        ''')
)
EDITION2_SELECTION = {
    "TestRowByRow": ["test_readers_never_see_part_of_a_batch",
                     "test_cancelled_batch_is_all_or_nothing", "test_trim_deletes_older_rows"],
    "TestTrimAfter": ["test_readers_never_see_an_untrimmed_window",
                      "test_cancelled_batch_is_all_or_nothing", "test_trim_deletes_older_rows"],
    "TestStaleIndex": ["test_concurrent_task_batches", "test_concurrent_task_batches_with_trim",
                       "test_concurrent_tasks_append"],
    "TestCaseRoles": ["test_roles_are_compared_exactly", "test_random_calls_match_reference",
                      "test_consecutive_role_single_saves"],
    "TestPrefixKeys": ["test_session_view_prefix_keeps_the_rest_of_the_block",
                       "test_random_calls_match_reference",
                       "test_session_view_prefixes_assistant_text"],
    "TestReencoding": ["test_content_is_stored_as_agent_squad_json", "test_async_with"],
    "TestFileShared": ["test_declared_missing_capabilities_hold"],
}

# Ways to pass by skipping or swapping the storage: each an error of a guard.
WAIVER_CLASSES = (
    "\n@pytest.mark.skip(reason='not today')"
    + _class("TestClassSkip", "broken-notrim://")
    + "\n@pytest.mark.xfail(reason='whatever fails')"
    + _class("TestClassXfail", "broken-notrim://")
    + _class("TestSwappedFactory", "broken-notrim://", '''
        @pytest.fixture
        def storage_factory(self):
            from storage_core_conformance import StorageFactory

            return StorageFactory("memory://", {}, 60.0)
        ''')
    + _class("TestNoCapabilities", "broken-notrim://", '''
        @pytest.fixture
        def backend_capabilities(self):
            from storage_core import Capabilities

            return Capabilities(False, False, False)
        ''')
    + _class("TestWideWaivers", "memory://", '''
        known_failures = {
            "test_save_returns_what_fetch_returns": "every parametrisation at once",
            "test_random_calls_match_reference": "everything only it catches",
            "test_bad_id_rejected[no-such-param]": "a parametrisation that does not exist",
            "test_trim_deletes_older_rows[messages]": "parameters of a plain test",
        }
        ''')
)
GUARD_TESTS = ["test_no_conformance_test_overridden", "test_known_failures_name_real_tests",
               "test_storage_under_test_is_the_one_the_url_names"]
WAIVER_SELECTION = {
    "TestClassSkip": [*GUARD_TESTS, "test_trim_deletes_older_rows"],
    "TestClassXfail": [*GUARD_TESTS, "test_trim_deletes_older_rows"],
    "TestSwappedFactory": [*GUARD_TESTS, "test_trim_deletes_older_rows"],
    "TestNoCapabilities": [*GUARD_TESTS, "test_trim_deletes_older_rows"],
    "TestWideWaivers": [*GUARD_TESTS, "test_bad_id_rejected"],
}

# A core that lets lone surrogates and oversize batches through (patched in
# the run's process): the bad-input matrix must fail it. No backend can plant
# this bug, as the core validates before any backend sees the call.
LAX_CORE = textwrap.dedent('''
    from collections.abc import Iterable, Mapping

    from storage_core import _validate

    _strict_text = _validate._check_text
    _strict_batch = _validate._batch


    def _lax_text(where, value, limits, suffix=""):
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return value
        return _strict_text(where, value, limits, suffix)


    def _lax_batch(objs, limits):
        if isinstance(objs, Iterable) and not isinstance(objs, (str, bytes, Mapping)):
            return list(objs)
        return _strict_batch(objs, limits)


    _validate._check_text = _lax_text
    _validate._batch = _lax_batch
    ''') + _class("TestLaxCore", "memory://")
LAX_SELECTION = {"TestLaxCore": ["test_bad_id_rejected", "test_bad_message_rejected",
                                 "test_batch_size_is_bounded"]}


def _selection(selection: dict[str, list[str]]) -> list[str]:
    return [f"test_backend.py::{cls}::{test}" for cls, tests in selection.items()
            for test in tests]


SCENARIOS: dict[str, tuple[str, str, list[str]]] = {
    # name: (asyncio mode, test classes, extra pytest arguments)
    "memory": ("strict", _class("TestMemory", "memory://"), []),
    "memory-auto-mode": ("auto", _class("TestMemory", "memory://"), []),
    "edition2": ("strict", EDITION2_CLASSES, _selection(EDITION2_SELECTION)),
    "waivers": ("strict", WAIVER_CLASSES, _selection(WAIVER_SELECTION)),
    "lax-core": ("strict", LAX_CORE, _selection(LAX_SELECTION)),
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
        "TestMemory::test_concurrent_process_batches",
    }
    assert "no shared_across_processes (" in run.output
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


def test_inclusive_session_cursor_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert "TestPageDup::test_session_pages_concatenate_to_the_full_listing" in run.failed(), (
        run.output[-3000:])
    assert "TestPageDup::test_fetch_before_index_windows" in run.with_outcome("passed")


def test_inclusive_before_index_is_caught(runs: dict[str, Run]) -> None:
    run = runs["broken"]
    assert {
        "TestBeforeIncl::test_fetch_before_index_windows",
        "TestBeforeIncl::test_fetch_before_index_after_a_trim",
    } <= run.failed(), run.output[-3000:]
    assert "TestBeforeIncl::test_session_pages_concatenate_to_the_full_listing" in (
        run.with_outcome("passed"))


def test_backend_without_paging_pages_in_the_core(runs: dict[str, Run]) -> None:
    """Paged reads are optional: the core's fallback passes every paging test."""
    run = runs["broken"]
    paging = {k: v for k, v in run.outcomes.items() if "::TestNoPaging::" in k}
    assert len(paging) >= 30, run.output[-3000:]
    assert set(paging.values()) == {"passed"}, {k: v for k, v in paging.items() if v != "passed"}


def test_forgotten_request_ids_are_caught(runs: dict[str, Run]) -> None:
    failed = runs["broken"].failed()
    for test in ("test_a_repeated_request_is_not_stored_again[append_messages]",
                 "test_a_repeated_pop_pops_nothing_more",
                 "test_concurrent_repeats_store_once"):
        assert f"TestForgetful::{test}" in failed, test


def test_request_ids_shared_between_conversations_are_caught(runs: dict[str, Run]) -> None:
    assert "TestUserWideIds::test_request_ids_belong_to_one_conversation" in runs[
        "broken"
    ].failed()


# -- bugs an earlier suite let through --------------------------------------


def test_partial_batch_seen_by_a_reader_is_caught(runs: dict[str, Run]) -> None:
    run = runs["edition2"]
    assert {"TestRowByRow::test_readers_never_see_part_of_a_batch",
            "TestRowByRow::test_cancelled_batch_is_all_or_nothing"} <= run.failed(), (
        run.output[-3000:])
    assert "TestRowByRow::test_trim_deletes_older_rows" in run.with_outcome("passed")


def test_trim_in_its_own_step_is_caught(runs: dict[str, Run]) -> None:
    run = runs["edition2"]
    assert {"TestTrimAfter::test_readers_never_see_an_untrimmed_window",
            "TestTrimAfter::test_cancelled_batch_is_all_or_nothing"} <= run.failed(), (
        run.output[-3000:])
    assert "TestTrimAfter::test_trim_deletes_older_rows" in run.with_outcome("passed")


def test_last_index_read_outside_the_write_is_caught(runs: dict[str, Run]) -> None:
    run = runs["edition2"]
    assert {"TestStaleIndex::test_concurrent_task_batches",
            "TestStaleIndex::test_concurrent_task_batches_with_trim"} <= run.failed(), (
        run.output[-3000:])
    # What the first edition ran: one message per call, which never shows it.
    assert "TestStaleIndex::test_concurrent_tasks_append" in run.with_outcome("passed")


def test_case_insensitive_roles_are_caught(runs: dict[str, Run]) -> None:
    run = runs["edition2"]
    assert {"TestCaseRoles::test_roles_are_compared_exactly",
            "TestCaseRoles::test_random_calls_match_reference"} <= run.failed(), (
        run.output[-3000:])
    assert "TestCaseRoles::test_consecutive_role_single_saves" in run.with_outcome("passed")


def test_prefix_dropping_keys_is_caught(runs: dict[str, Run]) -> None:
    run = runs["edition2"]
    assert {"TestPrefixKeys::test_session_view_prefix_keeps_the_rest_of_the_block",
            "TestPrefixKeys::test_random_calls_match_reference"} <= run.failed(), (
        run.output[-3000:])
    assert "TestPrefixKeys::test_session_view_prefixes_assistant_text" in run.with_outcome(
        "passed")


def test_reencoded_content_is_caught(runs: dict[str, Run]) -> None:
    run = runs["edition2"]
    assert "TestReencoding::test_content_is_stored_as_agent_squad_json" in run.failed(), (
        run.output[-3000:])
    assert "TestReencoding::test_async_with" in run.with_outcome("passed")


def test_false_capability_declaration_is_caught(runs: dict[str, Run]) -> None:
    run = runs["edition2"]
    assert "TestFileShared::test_declared_missing_capabilities_hold" in run.failed(), (
        run.output[-3000:])


def test_summary_counts_skips_by_capability(runs: dict[str, Run]) -> None:
    output = runs["memory"].output
    assert "conformance tests skipped because the backend declares no persistent" in output


@pytest.mark.parametrize("cls", ["TestClassSkip", "TestClassXfail"])
def test_class_level_skip_or_xfail_fails_the_guards(runs: dict[str, Run], cls: str) -> None:
    run = runs["waivers"]
    for guard in GUARD_TESTS:
        assert f"{cls}::{guard}" in run.failed(), run.output[-3000:]
    assert "waives the suite" in run.output
    assert run.returncode != 0


def test_swapped_storage_or_capabilities_fail_the_guards(runs: dict[str, Run]) -> None:
    run = runs["waivers"]
    failed = run.failed()
    for cls in ("TestSwappedFactory", "TestNoCapabilities"):
        assert f"{cls}::test_no_conformance_test_overridden" in failed, run.output[-3000:]
        assert f"{cls}::test_storage_under_test_is_the_one_the_url_names" in failed
    # Every test of the swapped factory fails, not only the guards.
    assert "TestSwappedFactory::test_trim_deletes_older_rows" in failed


def test_wide_known_failures_fail_the_guard(runs: dict[str, Run]) -> None:
    run = runs["waivers"]
    assert "TestWideWaivers::test_known_failures_name_real_tests" in run.failed()
    for words in ("test_save_returns_what_fetch_returns: names every parametrisation",
                  "test_random_calls_match_reference: the model-based test cannot be waived",
                  "test_bad_id_rejected[no-such-param]: no such parametrisation",
                  "test_trim_deletes_older_rows[messages]: the test has no parameters"):
        assert words in run.output, words


def test_lax_core_fails_the_bad_input_matrix(runs: dict[str, Run]) -> None:
    failed = runs["lax-core"].failed()
    for test in ("test_bad_id_rejected[lone-surrogate-user_id]",
                 "test_bad_id_rejected[lone-low-surrogate-agent_id]",
                 "test_bad_message_rejected[role-lone-surrogate]",
                 "test_batch_size_is_bounded"):
        assert f"TestLaxCore::{test}" in failed, test
    assert "TestLaxCore::test_bad_message_rejected[content-lone-surrogate]" not in failed
