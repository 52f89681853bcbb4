"""Producers and consumers in processes of their own (the Java client, franz-go), logged like ours.

Why it exists: what a producer goes through around a gateway switch depends on its client. The
Java client is the protocol's reference (kafka-clients 3.7.2 has no KIP-899 rebootstrap, 4.x has)
and franz-go recovers an idempotent producer its own way; neither runs inside Python. So each
runs as a small program (``lab/java/SequenceProducer.java``,
``gomod/franz-go/cmd/sequence-producer``) sending the records :class:`workloads.SequencedProducer`
sends (values :func:`workloads.encode_value`, keys :func:`workloads.record_key`) at a steady
rate, printing one line per event, and :class:`ProcessProducer` reads those lines into a
:class:`workloads.ProducerLog` from a thread, so one analysis (``landed``, ``first_ack_on``)
covers every client family. Both programs print::

    SENT <seq> <epoch-ms>                       just before the record is handed to the client
    ACK <seq> <partition> <offset> <epoch-ms>   acknowledged (the time is optional)
    ERR <seq> <error>                           failed
    FATAL <error>                               the producer itself is unusable; it stops
    DONE                                        flushed and closed

The consumer programs (``lab/java/SequenceConsumer.java``, ``cmd/sequence-consumer``) are group
members reading those records; :class:`ProcessConsumer` keeps what they print::

    RECV <seq> <partition> <offset> <epoch-ms>  received

Times: a program prints its wall clock; each time is moved onto this process's monotonic clock
when its line is read, as ``monotonic now - (wall now - printed)``, so the delay in reading the
output does not count (a wall-clock step between printing and reading would; a line without a
time gets the time it was read). The output goes to a file rather than a pipe because every lab
process is started by :func:`supervising.spawn`, which keeps the log for a post-mortem; the
reader tails it, sleeping briefly at its end. Every wait has a timeout.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, Self

from kafka_testbed import go_programs, java_programs, java_workloads, supervising, versions
from kafka_testbed.errors import TestbedError
from kafka_testbed.workloads import JOIN_TIMEOUT_SECONDS, ProducerLog, Receipt

Settings = Mapping[str, str | int | float | bool]
"""``key=value`` options: producer configs for Java, the program's options for franz-go (listed
at the head of its ``main.go``)."""

EXIT_FATAL = 3
"""Both programs' exit status after a FATAL line."""
DEFAULT_RUN_SECONDS = 600.0
"""A program stops by itself after this long, should :meth:`ProcessProducer.stop` never come."""
TAIL_POLL_SECONDS = 0.02
READ_CHUNK_BYTES = 65536
OUTPUT_TAIL_LINES = 30

_SENT = re.compile(r"SENT (\d+) (\d+)")
_ACK = re.compile(r"ACK (\d+) (-?\d+) (-?\d+)(?: (\d+))?")
_ERR = re.compile(r"ERR (\d+) (.*)")
_FATAL = re.compile(r"FATAL (.*)")
_RECV = re.compile(r"RECV (\d+) (-?\d+) (-?\d+) (\d+)")


def program_arguments(
    bootstrap: str, topic: str, *, seconds: float, rate: float, first_seq: int, settings: Settings
) -> list[str]:
    """Both programs' command line: ``<bootstrap> <topic> <seconds> <rate> [key=value ...]``."""
    options = {"first-seq": first_seq, **settings}
    return [bootstrap, topic, str(float(seconds)), str(float(rate))] + [
        f"{key}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in options.items()
    ]


def local_time(printed_ms: int, read_at: float, wall_now: float) -> float:
    """A program's wall-clock time as this process's monotonic time (never after ``read_at``)."""
    return read_at - max(0.0, wall_now - printed_ms / 1000.0)


class ProgramOutput:
    """A program's output, recorded line by line into ``log``; the caller supplies the clocks."""

    def __init__(self, log: ProducerLog) -> None:
        self.log = log
        self.fatal: list[str] = []
        """The error of every FATAL line, in order."""
        self.flushed = False
        """A DONE line came: the program flushed and closed its client."""
        self.receipts: list[Receipt] = []
        """Every RECV line (a consumer program), in order."""
        self._partial = b""

    def feed(self, chunk: bytes, *, read_at: float, wall_now: float) -> None:
        """Record every complete line of ``chunk``; a trailing partial line waits for the rest."""
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            self.take(line.decode(errors="replace"), read_at=read_at, wall_now=wall_now)

    def finish(self, *, read_at: float, wall_now: float) -> None:
        """The output ended: record a last line that had no newline."""
        if self._partial:
            self.take(self._partial.decode(errors="replace"), read_at=read_at, wall_now=wall_now)
            self._partial = b""

    def take(self, line: str, *, read_at: float, wall_now: float) -> None:
        """Record one line; anything else the program printed (client logging) is ignored."""
        line = line.rstrip("\r")
        if sent := _SENT.fullmatch(line):
            at = local_time(int(sent.group(2)), read_at, wall_now)
            self.log.sent(int(sent.group(1)), at=at)
        elif ack := _ACK.fullmatch(line):
            printed = ack.group(4)
            at = read_at if printed is None else local_time(int(printed), read_at, wall_now)
            self.log.done(int(ack.group(1)), None, at=at)
        elif err := _ERR.fullmatch(line):
            self.log.done(int(err.group(1)), err.group(2), at=read_at)
        elif recv := _RECV.fullmatch(line):
            seq, partition, offset, printed = (int(group) for group in recv.groups())
            self.receipts.append(
                Receipt(seq, local_time(printed, read_at, wall_now), partition, offset)
            )
        elif fatal := _FATAL.fullmatch(line):
            self.fatal.append(fatal.group(1))
        elif line == "DONE":
            self.flushed = True


class ClientProgram(Protocol):
    """One producer or consumer program, built against one client."""

    @property
    def name(self) -> str: ...

    def prepare(self) -> None:
        """Fetch and build what the program needs (slow the first time), so a start is quick."""

    def start(self, arguments: Sequence[str], output: Path) -> supervising.Process:
        """Run it with ``arguments``; stdout and stderr go to ``output``."""


@dataclass(frozen=True)
class JavaSequenceProducer:
    """``lab/java/SequenceProducer.java`` against the kafka-clients jars of ``version``."""

    version: str

    @property
    def name(self) -> str:
        return f"java-{self.version}"

    def prepare(self) -> None:
        java_programs.compiled("SequenceProducer", java_workloads.client_jars(self.version))

    def start(self, arguments: Sequence[str], output: Path) -> supervising.Process:
        jars = java_workloads.client_jars(self.version)
        return java_programs.start("SequenceProducer", jars, arguments, output)


@dataclass(frozen=True)
class FranzGoSequenceProducer:
    """``gomod/franz-go/cmd/sequence-producer``, with the franz-go release pinned there."""

    @property
    def name(self) -> str:
        return "franz-go"

    def prepare(self) -> None:
        go_programs.build(go_programs.sequence_producer())

    def start(self, arguments: Sequence[str], output: Path) -> supervising.Process:
        return go_programs.start(go_programs.sequence_producer(), arguments, output)


@dataclass(frozen=True)
class JavaSequenceConsumer:
    """``lab/java/SequenceConsumer.java`` against the kafka-clients jars of ``version``."""

    version: str

    @property
    def name(self) -> str:
        return f"java-{self.version}"

    def prepare(self) -> None:
        java_programs.compiled("SequenceConsumer", java_workloads.client_jars(self.version))

    def start(self, arguments: Sequence[str], output: Path) -> supervising.Process:
        jars = java_workloads.client_jars(self.version)
        return java_programs.start("SequenceConsumer", jars, arguments, output)


@dataclass(frozen=True)
class FranzGoSequenceConsumer:
    """``gomod/franz-go/cmd/sequence-consumer``, with the franz-go release pinned there."""

    @property
    def name(self) -> str:
        return "franz-go"

    def prepare(self) -> None:
        go_programs.build(go_programs.sequence_consumer())

    def start(self, arguments: Sequence[str], output: Path) -> supervising.Process:
        return go_programs.start(go_programs.sequence_consumer(), arguments, output)


class ProgramProcess:
    """A client program in its own process, its output recorded while it runs."""

    def __init__(
        self, program: ClientProgram, arguments: Sequence[str], *, log_dir: Path | None = None
    ) -> None:
        """The program's output file goes to ``log_dir`` (a new temporary folder by default)."""
        self.program = program
        self.name = program.name
        self.arguments = list(arguments)
        self.log = ProducerLog()
        self.output = ProgramOutput(self.log)
        self.fatal = self.output.fatal
        """The error of every FATAL line: the program's client became unusable and it stopped."""
        self.exit_code: int | None = None
        """Set once the process has ended (negative: killed by that signal)."""
        self.failure: BaseException | None = None
        folder = Path(tempfile.mkdtemp(prefix="process-client-")) if log_dir is None else log_dir
        handle, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log", dir=folder)
        os.close(handle)
        self.output_path = Path(path)
        self._process: supervising.Process | None = None
        self._changed = threading.Condition()
        self._drained = False
        self._reader = threading.Thread(target=self._read, name=f"output-{self.name}", daemon=True)

    def start(self) -> Self:
        self.program.prepare()
        self._process = self.program.start(self.arguments, self.output_path)
        self._reader.start()
        return self

    def stop(self, flush_timeout: float = 30.0) -> None:
        """SIGTERM the program, which stops sending and flushes; kill it after ``flush_timeout``.

        Raises when the program had ended by itself in a way neither the time bound nor a FATAL
        explains (a bad command line, a crash). A no-op before :meth:`start`."""
        process = self._process
        if process is None:
            return
        ended_by_itself = process.poll() is not None
        status = supervising.terminate(process, grace_seconds=flush_timeout)
        self._reader.join(JOIN_TIMEOUT_SECONDS)
        self.exit_code = status
        if self.failure is not None:
            raise TestbedError(f"reading {self.output_path} failed") from self.failure
        if ended_by_itself and status not in (0, EXIT_FATAL):
            raise TestbedError(
                f"{self.name} exited with status {status}; "
                f"last lines of {self.output_path}:\n{self.output_tail()}"
            )

    def wait_finished(self, timeout: float) -> bool:
        """True once the program ended by itself (time bound, FATAL) and its output is read."""
        return self._wait_for(lambda: self._drained, timeout)

    def wait_acked(self, count: int, timeout: float) -> bool:
        """True once at least ``count`` records are acknowledged in all; False after ``timeout``
        or when the program ended with fewer."""
        return self._wait_for(lambda: self._drained or self._acked() >= count, timeout) and (
            self._acked() >= count
        )

    def wait_settled(self, timeout: float) -> bool:
        """True once every record sent so far is acknowledged or failed (e.g. after the run)."""

        def settled() -> bool:
            sent, acked, errors = self.log.snapshot()
            return set(sent) <= set(acked) | set(errors)

        return self._wait_for(lambda: settled() or self._drained, timeout) and settled()

    def output_tail(self, lines: int = OUTPUT_TAIL_LINES) -> str:
        text = self.output_path.read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def _acked(self) -> int:
        return len(self.log.snapshot()[1])

    def _wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        self._require_started()
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def _require_started(self) -> supervising.Process:
        if self._process is None:
            raise TestbedError(f"the {self.name} program was never started")
        return self._process

    def _read(self) -> None:
        try:
            with self.output_path.open("rb") as output:
                self._tail(output)
        except BaseException as error:  # kept for stop(); a thread cannot raise to its owner
            self.failure = error
        finally:
            with self._changed:
                self._drained = True
                self._changed.notify_all()

    def _tail(self, output: BinaryIO) -> None:
        process = self._require_started()
        while True:
            chunk = output.read(READ_CHUNK_BYTES)
            if chunk:
                self._record(chunk)
            elif process.poll() is not None:
                self._record(output.read(), last=True)  # written after our last read, if any
                return
            else:
                time.sleep(TAIL_POLL_SECONDS)

    def _record(self, chunk: bytes, *, last: bool = False) -> None:
        read_at, wall_now = time.monotonic(), time.time()
        with self._changed:
            self.output.feed(chunk, read_at=read_at, wall_now=wall_now)
            if last:
                self.output.finish(read_at=read_at, wall_now=wall_now)
            self._changed.notify_all()


class ProcessProducer(ProgramProcess):
    """A producer program (SENT, ACK, ERR lines) recorded into :attr:`log` while it runs."""

    def __init__(
        self,
        program: ClientProgram,
        bootstrap: str,
        topic: str,
        *,
        rate: float,
        seconds: float = DEFAULT_RUN_SECONDS,
        first_seq: int = 0,
        settings: Settings | None = None,
        log_dir: Path | None = None,
    ) -> None:
        """``seconds`` bounds the run; ``first_seq`` keeps several producers on one topic apart."""
        arguments = program_arguments(
            bootstrap, topic, seconds=seconds, rate=rate, first_seq=first_seq,
            settings=settings or {},
        )  # fmt: skip
        super().__init__(program, arguments, log_dir=log_dir)


class ProcessConsumer(ProgramProcess):
    """A consumer group member program (RECV lines): what it received, and when."""

    def __init__(
        self,
        program: ClientProgram,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        seconds: float = DEFAULT_RUN_SECONDS,
        settings: Settings | None = None,
        log_dir: Path | None = None,
    ) -> None:
        options = [f"{key}={value}" for key, value in (settings or {}).items()]
        arguments = [bootstrap, topic, group, str(float(seconds)), *options]
        super().__init__(program, arguments, log_dir=log_dir)

    def received(self) -> list[Receipt]:
        with self._changed:
            return list(self.output.receipts)


PROGRAMS: Mapping[str, ClientProgram] = {
    program.name: program
    for program in (
        JavaSequenceProducer(versions.KAFKA_VERSION),
        JavaSequenceProducer(versions.OLD_CLIENTS_VERSION),
        FranzGoSequenceProducer(),
    )
}


class ProcessProducerFactory(Protocol):
    """:class:`ProcessProducer` with its program chosen."""

    def __call__(
        self,
        bootstrap: str,
        topic: str,
        *,
        rate: float,
        seconds: float = ...,
        first_seq: int = ...,
        settings: Settings | None = ...,
        log_dir: Path | None = ...,
    ) -> ProcessProducer: ...


PROCESS_PRODUCERS: Mapping[str, ProcessProducerFactory] = {
    name: functools.partial(ProcessProducer, program) for name, program in PROGRAMS.items()
}
"""Client family (``java-4.1.1``, ``java-3.7.2``, ``franz-go``) -> producer factory."""


CONSUMER_PROGRAMS: Mapping[str, ClientProgram] = {
    program.name: program
    for program in (
        JavaSequenceConsumer(versions.KAFKA_VERSION),
        JavaSequenceConsumer(versions.OLD_CLIENTS_VERSION),
        FranzGoSequenceConsumer(),
    )
}


class ProcessConsumerFactory(Protocol):
    """:class:`ProcessConsumer` with its program chosen."""

    def __call__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        seconds: float = ...,
        settings: Settings | None = ...,
        log_dir: Path | None = ...,
    ) -> ProcessConsumer: ...


PROCESS_CONSUMERS: Mapping[str, ProcessConsumerFactory] = {
    name: functools.partial(ProcessConsumer, program) for name, program in CONSUMER_PROGRAMS.items()
}
"""Client family (``java-4.1.1``, ``java-3.7.2``, ``franz-go``) -> consumer factory."""
