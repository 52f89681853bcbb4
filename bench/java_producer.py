"""The Java client in the switch-latency benchmark: ``bench/java/SequencedProducer.java`` in a JVM.

Why it exists: the Java producer is the reference client, and from Kafka 3.8 on it re-bootstraps
(KIP-899) where older ones only reconnect to the broker addresses they learned; both behaviours
meet the gateway in production. The JVM paces its own sends (a pipe per record would measure
Python) and prints when each record was sent and acknowledged on ``System.nanoTime()``, which on
Linux is CLOCK_MONOTONIC like :func:`time.monotonic`, so its times go into a
:class:`~kafka_testbed.workloads.ProducerLog` unchanged. The JVM is started through the lab's
process supervision (its own process group, killed with the benchmark) and its output is read
from its log file by a thread.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import time
from pathlib import Path

from kafka_testbed import broker_properties, fetching, supervising
from kafka_testbed.errors import TestbedError
from kafka_testbed.workloads import ProducerLog

SOURCE = Path(__file__).resolve().parent / "java" / "SequencedProducer.java"
MAIN_CLASS = "SequencedProducer"
COMPILE_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 45.0
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")


def compiled(jars: Path) -> Path:
    """The folder holding ``SequencedProducer.class`` built against ``jars`` (cached by hash)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + str(jars).encode()).hexdigest()[:12]
    target = fetching.cache_root() / "bench-java" / digest
    if (target / f"{MAIN_CLASS}.class").exists():
        return target
    javac = shutil.which("javac")
    if javac is None:
        raise TestbedError("`javac` is not on PATH: install a JDK 17+ to measure the Java client")
    staging = target.with_name(f"{digest}.{time.time_ns()}.tmp")
    staging.mkdir(parents=True)
    command = [javac, "-cp", fetching.classpath(jars), "-d", str(staging), str(SOURCE)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise TestbedError(f"compiling {SOURCE.name} failed:\n{result.stderr[-3000:]}")
    if target.exists():  # built meanwhile by another run
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.replace(target)
    return target


def _log4j_config(log_path: Path) -> Path:
    """Client warnings only, so the log holds little beyond the producer's own lines."""
    path = log_path.with_suffix(".log4j2.properties")
    path.write_text(broker_properties.log4j2_properties(level="WARN", target="SYSTEM_ERR"))
    return path


class JavaSequencedProducer:
    """Same surface as :class:`~kafka_testbed.workloads.SequencedProducer`: ``log``, ``stop``."""

    def __init__(
        self, bootstrap: str, topic: str, *, rate: float, jars: Path, log_path: Path
    ) -> None:
        self.name = f"java ({jars.name})"
        self.log = ProducerLog()
        self.log_path = log_path
        java = shutil.which("java") or "java"
        classes = compiled(jars)
        command = broker_properties.java_command(
            java,
            f"{classes}:{fetching.classpath(jars)}",
            MAIN_CLASS,
            [bootstrap, topic, str(rate)],
            log4j_config=_log4j_config(log_path),
            jvm_options=JVM_OPTIONS,
        )
        self._process = supervising.spawn(command, log_path)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._follow, name="java-producer-log")
        self._reader.daemon = True
        self._reader.start()

    def stop(self, flush_timeout: float = 30.0) -> None:
        """SIGTERM: the JVM stops sending and flushes; then read its last lines."""
        supervising.terminate(self._process, grace_seconds=max(flush_timeout, STOP_GRACE_SECONDS))
        self._stop.set()
        self._reader.join(flush_timeout)

    def _follow(self) -> None:
        with self.log_path.open() as lines:
            while True:
                line = lines.readline()
                if line:
                    self._record(line)
                elif self._stop.is_set():
                    return
                else:
                    time.sleep(0.005)

    def _record(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        parts = rest.split(" ", 2)
        if kind not in ("S", "A", "E") or len(parts) < 2 or not parts[0].isdigit():
            return  # a JVM warning, not one of ours
        seq, at = int(parts[0]), int(parts[1]) / 1e9
        if kind == "S":
            self.log.sent(seq, at=at)
        else:
            self.log.done(seq, None if kind == "A" else parts[-1].strip(), at=at)
