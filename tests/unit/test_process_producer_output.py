"""The producer programs' output read into the producer log, without running any program: times
moved onto the local clock, failures and fatal errors told apart, client chatter ignored."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from kafka_testbed import go_programs, process_producers
from kafka_testbed.process_producers import ProgramOutput
from kafka_testbed.workloads import ProducerLog

READ_AT = 500.0
"""The local monotonic clock when the lines are read."""
WALL_NOW = 1_700_000_010.0
"""The wall clock at that moment: a line printed at 1_700_000_009_750 ms was printed 0.25 s ago."""


def read(*lines: str) -> ProgramOutput:
    output = ProgramOutput(ProducerLog())
    for line in lines:
        output.take(line, read_at=READ_AT, wall_now=WALL_NOW)
    return output


# Times


def test_sent_and_ack_times_are_moved_onto_the_local_monotonic_clock() -> None:
    output = read("SENT 7 1700000009500", "ACK 7 2 41 1700000009750")

    sent, acked, errors = output.log.snapshot()

    assert sent == {7: pytest.approx(499.5)}
    assert acked == {7: pytest.approx(499.75)}
    assert errors == {}


def test_an_ack_line_without_a_time_is_timed_when_it_is_read() -> None:
    output = read("ACK 7 2 41")

    assert output.log.snapshot()[1] == {7: READ_AT}


def test_a_time_from_a_clock_ahead_of_ours_is_never_placed_after_the_read() -> None:
    output = read("SENT 7 1700000012000")

    assert output.log.snapshot()[0] == {7: READ_AT}


# Outcomes


def test_an_err_line_records_the_error_of_its_record() -> None:
    error = "org.apache.kafka.common.errors.TimeoutException: Expiring 1 record(s)"

    output = read("SENT 3 1700000009000", f"ERR 3 {error}")

    assert output.log.snapshot()[2] == {3: error}
    assert output.fatal == []


def test_fatal_lines_are_kept_in_order_apart_from_record_errors() -> None:
    oosn = "*kerr.Error: OUT_OF_ORDER_SEQUENCE_NUMBER: The broker received an out of order seq..."

    output = read(f"ERR 3 {oosn}", f"FATAL {oosn}", "FATAL later: another")

    assert output.fatal == [oosn, "later: another"]
    assert output.log.snapshot()[2] == {3: oosn}


def test_done_says_the_program_flushed_and_closed() -> None:
    assert not read("SENT 1 1700000009000").flushed
    assert read("DONE").flushed


def test_client_logging_and_damaged_lines_are_ignored() -> None:
    output = read(
        "[2025-01-01 00:00:00,000] WARN [Producer clientId=producer-1] Connection to node -1",
        "ACK 12",
        "SENT x 1700000009000",
        "DONE and more",
        "",
    )

    assert output.log.snapshot() == ({}, {}, {})
    assert output.fatal == [] and not output.flushed


def test_a_line_split_across_reads_is_recorded_once_whole() -> None:
    output = ProgramOutput(ProducerLog())

    output.feed(b"SENT 1 1700000009000\nACK 1 0 ", read_at=READ_AT, wall_now=WALL_NOW)
    assert output.log.snapshot()[1] == {}
    output.feed(b"5 1700000009500\r\nSENT 2 17000", read_at=READ_AT, wall_now=WALL_NOW)
    output.finish(read_at=READ_AT, wall_now=WALL_NOW)

    sent, acked, _ = output.log.snapshot()
    assert acked == {1: pytest.approx(499.5)}
    assert set(sent) == {1, 2}


# Command lines and programs


def test_the_command_line_carries_first_seq_and_settings_as_key_value_pairs() -> None:
    arguments = process_producers.program_arguments(
        "127.0.0.1:9092",
        "orders",
        seconds=20,
        rate=150,
        first_seq=1000,
        settings={"stop-on-data-loss": True, "delivery.timeout.ms": 60000},
    )

    assert arguments == [
        "127.0.0.1:9092",
        "orders",
        "20.0",
        "150.0",
        "first-seq=1000",
        "stop-on-data-loss=true",
        "delivery.timeout.ms=60000",
    ]


def test_each_client_family_has_a_producer_named_after_it() -> None:
    assert set(process_producers.PROCESS_PRODUCERS) == {"java-4.1.1", "java-3.7.2", "franz-go"}
    for name, program in process_producers.PROGRAMS.items():
        assert program.name == name


def test_a_go_binary_is_cached_under_a_name_that_changes_with_its_sources_and_the_go_release(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_TESTBED_CACHE", str(tmp_path / "cache"))
    module = tmp_path / "franz-go"
    shutil.copytree(go_programs.FRANZ_GO_DIR, module)
    binary = go_programs.sequence_producer()
    copy = dataclasses.replace(binary, module_dir=module)

    before = copy.path("go1.26.8")
    (module / go_programs.SEQUENCE_PRODUCER_SOURCE).write_text("package main\n")

    assert before == binary.path("go1.26.8")
    assert before.parent == tmp_path / "cache" / "franz-go"
    assert before.name.startswith("sequence-producer-v")
    assert copy.path("go1.26.8") != before
    assert binary.path("go1.26.0") != before


# Consumer programs


def test_a_recv_line_is_a_receipt_on_the_local_clock_and_not_a_producer_event() -> None:
    output = read("RECV 42 1 17 1700000009750")

    assert [(r.seq, r.partition, r.offset) for r in output.receipts] == [(42, 1, 17)]
    assert output.receipts[0].at == pytest.approx(499.75)
    assert output.log.snapshot() == ({}, {}, {})


def test_a_recv_line_missing_its_time_is_ignored_as_chatter() -> None:
    assert read("RECV 42 1 17").receipts == []


def test_each_program_family_has_a_consumer_named_after_it() -> None:
    assert set(process_producers.PROCESS_CONSUMERS) == set(process_producers.PROCESS_PRODUCERS)
