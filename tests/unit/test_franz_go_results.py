"""Reading franz-go's ``go test -v`` output and comparing a straight run with a gateway run.

The outputs below are cut from real runs of the kgo test binary (Kafka 4.4.0, this repository's
gateway); running the binary itself is the integration test's job.
"""

import re
from pathlib import Path

import pytest

from kafka_testbed import franz_go
from kafka_testbed.franz_go import Outcome, TestResult, Verdict

PASSING_RUN = """\
=== RUN   TestUnknownGroupOffsetFetchPinned
--- PASS: TestUnknownGroupOffsetFetchPinned (0.02s)
=== RUN   TestPing
=== PAUSE TestPing
=== RUN   TestGroupSimple
=== PAUSE TestGroupSimple
=== CONT  TestPing
--- PASS: TestPing (0.03s)
=== CONT  TestGroupSimple
=== RUN   TestGroupSimple/classic
=== PAUSE TestGroupSimple/classic
=== RUN   TestGroupSimple/848
=== PAUSE TestGroupSimple/848
=== CONT  TestGroupSimple/classic
=== CONT  TestGroupSimple/848
=== NAME  TestGroupSimple/classic
    consumer_test.go:1114: deleting group 5ad6c2ee
    --- PASS: TestGroupSimple/classic (1.21s)
    --- PASS: TestGroupSimple/848 (1.87s)
--- PASS: TestGroupSimple (0.00s)
PASS
"""

SKIPPING_RUN = """\
=== RUN   TestShareGroup
=== PAUSE TestShareGroup
=== CONT  TestShareGroup
    client_test.go:399: broker does not support share groups (requires ShareFetch v2 and \
ShareAcknowledge v2, Kafka 4.2+)
--- SKIP: TestShareGroup (0.00s)
PASS
"""

TIMED_OUT_RUN = """\
=== RUN   TestTxnEtl
=== PAUSE TestTxnEtl
=== CONT  TestTxnEtl
=== RUN   TestTxnEtl/sticky/848
=== RUN   TestTxnEtl/range
=== NAME  TestTxnEtl
    txn_test.go:90: unexpected produce err: INVALID_TXN_STATE: The producer attempted a \
transactional operation in an invalid state.
    txn_test.go:99: partition 8 produced offsets out of order, got -1 != exp 0
[05:28:16.317 3][INFO] batch in a produce request failed; broker: 1, partition: 10
panic: test timed out after 1m30s
\trunning tests:
\t\tTestTxnEtl (1m30s)
\t\tTestTxnEtl/range (1m30s)
\t\tTestTxnEtl/sticky/848 (1m30s)

goroutine 166389 [running]:
testing.(*M).startAlarm.func1()
"""

FAILING_RUN = """\
=== RUN   TestIssue325
=== PAUSE TestIssue325
=== CONT  TestIssue325
    consumer_test.go:47: [0xc000]
    helpers_test.go:486: FAILED TESTING -- NOT DELETING TOPIC 9f2c
--- FAIL: TestIssue325 (30.01s)
FAIL
"""


def result(outcome: Outcome, *messages: str, name: str = "TestX") -> TestResult:
    return TestResult(name, outcome, 1.0, messages)


# Reading go test -v output


def test_a_passing_test_is_read_with_its_duration() -> None:
    results = franz_go.parse_test_output(PASSING_RUN)

    assert results["TestPing"].outcome is Outcome.PASS
    assert results["TestPing"].seconds == pytest.approx(0.03)


def test_only_top_level_tests_are_results_and_their_subtests_log_lines_are_theirs() -> None:
    results = franz_go.parse_test_output(PASSING_RUN)

    assert set(results) == {"TestUnknownGroupOffsetFetchPinned", "TestPing", "TestGroupSimple"}
    assert results["TestGroupSimple"].messages == (
        "consumer_test.go:1114: deleting group 5ad6c2ee",
    )


def test_a_skipped_test_keeps_the_reason_it_gave() -> None:
    skipped = franz_go.parse_test_output(SKIPPING_RUN)["TestShareGroup"]

    assert skipped.outcome is Outcome.SKIP
    assert "broker does not support share groups" in skipped.note


def test_a_failed_test_is_explained_by_its_first_line_that_is_not_clean_up_chatter() -> None:
    failed = franz_go.parse_test_output(FAILING_RUN)["TestIssue325"]

    assert failed.outcome is Outcome.FAIL
    assert failed.note == "consumer_test.go:47: [0xc000]"


def test_tests_still_running_at_the_timeout_are_timeouts_with_their_running_time() -> None:
    results = franz_go.parse_test_output(TIMED_OUT_RUN)

    assert set(results) == {"TestTxnEtl"}
    assert results["TestTxnEtl"].outcome is Outcome.TIMEOUT
    assert results["TestTxnEtl"].seconds == 90.0
    assert "INVALID_TXN_STATE" in results["TestTxnEtl"].note


def test_client_log_lines_between_test_events_are_not_taken_for_test_messages() -> None:
    messages = franz_go.parse_test_output(TIMED_OUT_RUN)["TestTxnEtl"].messages

    assert not any("[INFO]" in message for message in messages)


def test_a_selected_test_that_never_reported_has_no_result() -> None:
    results = franz_go.parse_test_output(PASSING_RUN, ["TestPing", "TestTxnEtl"])

    assert results["TestTxnEtl"].outcome is Outcome.NO_RESULT
    assert results["TestPing"].outcome is Outcome.PASS


def test_a_test_that_logs_more_than_the_cap_keeps_only_its_first_lines() -> None:
    text = "=== RUN   TestTxnEtl\n" + "    txn_test.go:90: again\n" * 500

    messages = franz_go.parse_test_output(text)["TestTxnEtl"].messages

    assert len(messages) == franz_go.MAX_MESSAGES_PER_TEST


# Comparing a straight run with a gateway run


def test_a_test_that_passes_direct_but_fails_through_the_gateway_is_a_regression() -> None:
    comparison = franz_go.compare({"TestX": result(Outcome.PASS)}, {"TestX": result(Outcome.FAIL)})

    assert [row.test for row in comparison.regressions] == ["TestX"]


@pytest.mark.parametrize("gateway", [Outcome.SKIP, Outcome.TIMEOUT, Outcome.NO_RESULT])
def test_a_test_that_passes_direct_and_does_not_pass_through_the_gateway_is_a_regression(
    gateway: Outcome,
) -> None:
    comparison = franz_go.compare({"TestX": result(Outcome.PASS)}, {"TestX": result(gateway)})

    assert comparison.rows[0].verdict is Verdict.REGRESSION


def test_a_test_missing_from_the_gateway_run_is_a_regression() -> None:
    comparison = franz_go.compare({"TestX": result(Outcome.PASS)}, {}, ["TestX"])

    assert comparison.rows[0].gateway.outcome is Outcome.NO_RESULT
    assert comparison.rows[0].verdict is Verdict.REGRESSION


def test_a_test_that_passes_both_ways_is_the_same() -> None:
    comparison = franz_go.compare({"TestX": result(Outcome.PASS)}, {"TestX": result(Outcome.PASS)})

    assert comparison.rows[0].verdict is Verdict.SAME
    assert comparison.regressions == ()


def test_a_test_that_does_not_pass_direct_is_no_regression_whatever_the_gateway_did() -> None:
    comparison = franz_go.compare(
        {"TestA": result(Outcome.FAIL), "TestB": result(Outcome.SKIP)},
        {"TestA": result(Outcome.TIMEOUT), "TestB": result(Outcome.SKIP)},
    )

    assert [row.verdict for row in comparison.rows] == [Verdict.DIFFERENT, Verdict.SAME]
    assert comparison.regressions == ()


def test_the_rows_follow_the_selection_order() -> None:
    runs = {name: result(Outcome.PASS, name=name) for name in ("TestB", "TestA")}

    comparison = franz_go.compare(runs, runs, ["TestA", "TestB"])

    assert [row.test for row in comparison.rows] == ["TestA", "TestB"]


def test_the_table_lists_every_test_and_explains_a_regression_by_the_gateway_runs_message() -> None:
    comparison = franz_go.compare(
        {"TestPing": result(Outcome.PASS), "TestTxnEtl": result(Outcome.PASS)},
        {
            "TestPing": result(Outcome.PASS),
            "TestTxnEtl": result(Outcome.TIMEOUT, "txn_test.go:90: INVALID_TXN_STATE"),
        },
    )

    table = comparison.table()

    assert re.search(r"^TestPing\s+PASS 1\.0s\s+PASS 1\.0s\s+same$", table, re.MULTILINE)
    assert re.search(
        r"^TestTxnEtl\s+PASS 1\.0s\s+TIMEOUT 1\.0s\s+REGRESSION\s+"
        r"txn_test.go:90: INVALID_TXN_STATE$",
        table,
        re.MULTILINE,
    )
    assert table.endswith("2 tests: 1 same, 1 regressed, 0 different")


# The selection and how it is run


def test_the_selection_holds_every_core_test_and_the_transaction_test() -> None:
    selected = franz_go.selected_tests()

    assert "TestTxnEtl" in selected
    assert set(franz_go.CORE_TESTS) <= set(selected)
    assert len(selected) == len(set(selected))


def test_no_test_is_both_selected_and_left_out() -> None:
    left_out = {name.strip() for names in franz_go.LEFT_OUT for name in names.split(",")}

    assert not left_out & set(franz_go.selected_tests())


def test_the_group_and_transaction_etl_tests_run_in_different_processes() -> None:
    homes = {
        name: batch.name
        for batch in franz_go.BATCHES
        for name in batch.tests
        if name in ("TestGroupETL", "TestTxnEtl")
    }

    assert homes["TestGroupETL"] != homes["TestTxnEtl"]


def test_a_batch_runs_exactly_its_tests_and_not_others_sharing_a_prefix() -> None:
    batch = franz_go.Batch("b", ("TestIssue337", "TestPing"), timeout_seconds=90.0)

    arguments = franz_go.binary_arguments(batch)

    pattern = arguments[arguments.index("-test.run") + 1]
    assert re.search(pattern, "TestIssue337")
    assert not re.search(pattern, "TestIssue3370")
    assert arguments[arguments.index("-test.timeout") + 1] == "90s"
    assert "-test.v" in arguments


def test_inherited_kgo_settings_do_not_leak_into_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGO_TEST_SCRAM", "user:secret")

    environment = franz_go.harness_environment("127.0.0.1:9092", records=500)

    assert "KGO_TEST_SCRAM" not in environment
    assert environment["KGO_SEEDS"] == "127.0.0.1:9092"
    assert environment["KGO_TEST_RF"] == "1"
    assert environment["KGO_TEST_RECORDS"] == "500"


# Building


def test_the_pinned_franz_go_release_is_read_from_the_committed_go_mod() -> None:
    assert re.fullmatch(r"v\d+\.\d+\.\d+", franz_go.franz_go_version())


def test_the_binary_is_cached_under_a_name_that_changes_with_the_go_release(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_TESTBED_CACHE", str(tmp_path))

    old, new = franz_go.binary_path("go1.26.0"), franz_go.binary_path("go1.26.8")

    assert old != new
    assert old.parent == new.parent == tmp_path / "franz-go"
    assert old.name.startswith(f"kgo-{franz_go.franz_go_version()}-")


def test_a_missing_go_command_is_named_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(franz_go.shutil, "which", lambda _name: None)

    with pytest.raises(franz_go.FranzGoError, match=r"no `go` command was found.*Install Go"):
        franz_go.build()


# Running the control again

FLAKY_BINARY = """\
#!/bin/sh
# A stand-in for the kgo test binary: TestFlaky fails on its first run and passes after.
if [ "$1" = "-test.list" ]; then printf 'TestSteady\\nTestFlaky\\nTestBroken\\n'; exit 0; fi
pattern="$3"
for name in TestSteady TestFlaky TestBroken; do
  case "$pattern" in *"$name"*) ;; *) continue ;; esac
  echo "=== RUN   $name"
  if [ "$name" = TestBroken ]; then
    echo "    x_test.go:1: always fails"; echo "--- FAIL: $name (0.01s)"
  elif [ "$name" = TestFlaky ] && [ ! -e "$0.ran" ]; then
    touch "$0.ran"; echo "    x_test.go:2: unable to commit"; echo "--- FAIL: $name (0.01s)"
  else
    echo "--- PASS: $name (0.01s)"
  fi
done
"""


@pytest.fixture
def flaky_binary(tmp_path: Path) -> Path:
    binary = tmp_path / "kgo.test"
    binary.write_text(FLAKY_BINARY)
    binary.chmod(0o755)
    return binary


def run_twice(
    binary: Path, tmp_path: Path, tests: tuple[str, ...], core: tuple[str, ...]
) -> tuple[franz_go.SuiteRun, franz_go.SuiteRun]:
    """A straight run of ``tests``, then ``core`` tests that did not pass run once more."""
    batches = (franz_go.Batch("clients", tests, timeout_seconds=30.0),)
    first = franz_go.run_selection(binary, "seed:9092", log_dir=tmp_path / "a", batches=batches)
    again = franz_go.rerun_not_passed(binary, first, core, log_dir=tmp_path / "b", batches=batches)
    return first, again


def test_a_core_test_that_failed_straight_runs_once_more_and_its_second_result_counts(
    flaky_binary: Path, tmp_path: Path
) -> None:
    first, again = run_twice(flaky_binary, tmp_path, ("TestSteady", "TestFlaky"), ("TestFlaky",))

    assert first.not_passed(("TestSteady", "TestFlaky")) == ["TestFlaky"]
    assert again.not_passed(("TestSteady", "TestFlaky")) == []
    assert len(again.logs) == 2


def test_a_core_test_that_fails_twice_straight_still_fails_the_control(
    flaky_binary: Path, tmp_path: Path
) -> None:
    _, again = run_twice(
        flaky_binary, tmp_path, ("TestSteady", "TestBroken"), ("TestSteady", "TestBroken")
    )

    assert again.not_passed(("TestSteady", "TestBroken")) == ["TestBroken"]
    assert again.results["TestBroken"].note == "x_test.go:1: always fails"
