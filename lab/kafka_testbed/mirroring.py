"""MirrorMaker 2 between two lab clusters, and how far behind it is.

Why it exists: the gateway does not replicate data; a DR drill is only honest with the replication
users really run in front of it. This runs MirrorMaker 2 from the cached Kafka jars with its
dedicated driver (``org.apache.kafka.connect.mirror.MirrorMaker`` and an ``mm2.properties``),
one way, main -> failover, with ``IdentityReplicationPolicy`` (topic names unchanged, so clients
need no change after a switch) and consumer group offset sync. Every interval that decides how
stale the failover cluster may be is a :class:`MirrorSettings` field, short by default so a drill
takes seconds, not minutes.

How far behind replication is, is measured, never assumed: :func:`wait_until_caught_up` compares
each partition's high watermark on both clusters, and :func:`replication_gap` names the
acknowledged records the failover cluster does not hold, from the records read back.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_testbed import broker_properties, fetching, supervising, warming
from kafka_testbed.clusters import read_tail
from kafka_testbed.errors import TestbedError
from kafka_testbed.tooling import MIRROR_MAKER_2, TOOL_JVM_OPTIONS

IDENTITY_POLICY = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
SOURCE, TARGET = "main", "failover"
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0
JVM_OPTIONS: tuple[str, ...] = ("-Xmx512m", *TOOL_JVM_OPTIONS[1:])
INTERNAL_REPLICATION_FACTOR_KEYS = (
    "replication.factor",
    "checkpoints.topic.replication.factor",
    "heartbeats.topic.replication.factor",
    "offset-syncs.topic.replication.factor",
    "offset.storage.replication.factor",
    "status.storage.replication.factor",
    "config.storage.replication.factor",
)


@dataclass(frozen=True)
class MirrorSettings:
    """What the replication flow copies and how often it syncs; defaults suit a short drill."""

    topics: str = ".*"
    """Regex of the topics replicated."""
    groups: str = ".*"
    """Regex of the consumer groups whose offsets are checkpointed and synced."""
    emit_checkpoints_interval_seconds: int = 1
    sync_group_offsets_interval_seconds: int = 1
    refresh_topics_interval_seconds: int = 1
    refresh_groups_interval_seconds: int = 1
    offset_lag_max: int = 0
    """Emit an offset sync as soon as the target lags by more than this (default 100)."""
    internal_replication_factor: int = 1
    extra: Mapping[str, str] = field(default_factory=dict)
    """Further ``mm2.properties`` entries, winning over the ones derived here."""


def mm2_properties(
    source_bootstrap: str,
    target_bootstrap: str,
    settings: MirrorSettings,
    aliases: tuple[str, str] = (SOURCE, TARGET),
) -> dict[str, str]:
    """The ``mm2.properties`` of a one-way flow, main -> failover unless ``aliases`` (source,
    target) say otherwise (a reverse flow after a failover: failover -> main)."""
    source, target = aliases
    flow = f"{source}->{target}"
    properties = {
        "clusters": f"{source}, {target}",
        f"{source}.bootstrap.servers": source_bootstrap,
        f"{target}.bootstrap.servers": target_bootstrap,
        f"{flow}.enabled": "true",
        f"{target}->{source}.enabled": "false",
        f"{flow}.topics": settings.topics,
        f"{flow}.groups": settings.groups,
        "replication.policy.class": IDENTITY_POLICY,
        "sync.group.offsets.enabled": "true",
        "sync.group.offsets.interval.seconds": str(settings.sync_group_offsets_interval_seconds),
        "emit.checkpoints.interval.seconds": str(settings.emit_checkpoints_interval_seconds),
        "refresh.topics.interval.seconds": str(settings.refresh_topics_interval_seconds),
        "refresh.groups.interval.seconds": str(settings.refresh_groups_interval_seconds),
        "offset.lag.max": str(settings.offset_lag_max),
        "sync.topic.acls.enabled": "false",
        "tasks.max": "1",
    }
    factor = str(settings.internal_replication_factor)
    properties |= dict.fromkeys(INTERNAL_REPLICATION_FACTOR_KEYS, factor)
    return properties | dict(settings.extra)


@dataclass
class MirrorMaker:
    """A running MirrorMaker 2 process (its own process group), with its log."""

    process: supervising.Process
    workdir: Path
    log_path: Path

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(read_tail(self.log_path, lines))

    def stall(self) -> None:
        """Freeze MirrorMaker (SIGSTOP): replication lags from now on, like a congested link."""
        self._signal(signal.SIGSTOP)

    def unstall(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: signal.Signals) -> None:
        if self.is_alive():
            os.killpg(self.process.pid, signum)

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> int:
        """SIGTERM (MirrorMaker flushes what it copied), SIGKILL after ``grace_seconds``."""
        self.unstall()
        return supervising.terminate(self.process, grace_seconds=grace_seconds)

    def remove_files(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_mirror_maker(
    source_bootstrap: str,
    target_bootstrap: str,
    settings: MirrorSettings | None = None,
    *,
    workdir: Path | None = None,
    aliases: tuple[str, str] = (SOURCE, TARGET),
) -> MirrorMaker:
    """Start MirrorMaker 2 (dedicated mode) replicating ``source`` to ``target``.

    Only the herder of flows into the target runs (``--clusters failover``). It returns at
    once; whether records flow is judged from the records (see :func:`wait_until_caught_up`),
    not from log lines.
    """
    java = shutil.which("java")
    if java is None:
        raise TestbedError("Java (`java`) is not on PATH; MirrorMaker 2 needs Java 17+.")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="kafka-testbed-mm2-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mm2.properties"
    properties = mm2_properties(
        source_bootstrap, target_bootstrap, settings or MirrorSettings(), aliases
    )
    config.write_text(broker_properties.render_properties(properties))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(broker_properties.log4j2_properties(level="INFO"))
    jars_dir = fetching.fetch_kafka_jars()
    command = broker_properties.java_command(
        java, fetching.classpath(jars_dir), MIRROR_MAKER_2,
        [str(config), "--clusters", aliases[1]],
        log4j_config=log4j, jvm_options=(*JVM_OPTIONS, *warming.archive_options(jars_dir)),
    )  # fmt: skip
    log_path = workdir / "mirror-maker.log"
    return MirrorMaker(supervising.spawn(command, log_path), workdir, log_path)


def high_watermarks(
    bootstrap: str, topic: str, partitions: int, *, timeout: float = 5.0
) -> dict[int, int]:
    """Partition -> high watermark of ``topic`` on one cluster, read by a real client."""
    from confluent_kafka import Consumer, TopicPartition

    consumer: Any = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "kafka-testbed-watermarks", "log_level": 2}
    )
    try:
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout, False)[1])
            for p in range(partitions)
        }
    finally:
        consumer.close()


def lagging_partitions(
    source_bootstrap: str, target_bootstrap: str, topic: str, partitions: int
) -> dict[int, tuple[int, int]]:
    """Partition -> (source, target) high watermarks, for partitions the target has not reached.

    Valid for a target partition that started empty: the identity policy then keeps offsets.
    """
    source = high_watermarks(source_bootstrap, topic, partitions)
    target = high_watermarks(target_bootstrap, topic, partitions)
    return {p: (source[p], target[p]) for p in source if target[p] < source[p]}


def wait_until_caught_up(
    mirror: MirrorMaker,
    source_bootstrap: str,
    target_bootstrap: str,
    topic: str,
    partitions: int,
    *,
    timeout: float,
) -> float:
    """Wait until every partition's source high watermark is reached on the target.

    Returns the seconds it took; raises :class:`TestbedError` (with MirrorMaker's log) on timeout
    or when MirrorMaker died.
    """
    started = time.monotonic()
    deadline = started + timeout
    lagging = lagging_partitions(source_bootstrap, target_bootstrap, topic, partitions)
    while lagging:
        if not mirror.is_alive() or time.monotonic() > deadline:
            problem = "exited" if not mirror.is_alive() else f"not caught up after {timeout:.0f}s"
            raise TestbedError(
                f"MirrorMaker 2 {problem}; lagging partitions (source, target high watermark): "
                f"{lagging}\n{mirror.log_path}:\n{mirror.log_tail()}"
            )
        time.sleep(POLL_SECONDS)
        lagging = lagging_partitions(source_bootstrap, target_bootstrap, topic, partitions)
    return time.monotonic() - started


def replication_gap(acknowledged: Iterable[int], on_target: Iterable[int]) -> set[int]:
    """Acknowledged sequence numbers the target cluster does not hold: the data-loss window."""
    return set(acknowledged) - set(on_target)
