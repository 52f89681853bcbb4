"""Switch latency per client library: switch request -> first ack by, and first read from, the new
cluster.

Why it exists: the gateway's promise is that a switch moves producers at once (issue 18's goal,
every family with default settings: p50 < 500 ms, p99 < 2 s over 50 switches), and how fast a
client comes back depends on the client library's own reconnect and metadata logic. So the
same workload is measured for each library.

Consumers: beside each producer runs a consumer group member of the same library (the Java and
franz-go ones as programs of their own, :mod:`kafka_testbed.process_producers`), through the
gateway, with the library's defaults except ``auto.offset.reset=earliest`` (so a group new to a
cluster reads it from the start). Its resume latency for switch ``k`` is ``R - T_k`` where ``R``
is the earliest receipt, after ``T_k``, of a record sent in ``[T_k, T_{k+1})`` and stored on
``C_k`` only: a record that exists only on ``C_k`` can only have been read from ``C_k``. So it
includes the producer's own return to ``C_k``, as an application sees it. Committed offsets are
on both clusters after the first round trip (the member commits on each cluster while there; no
MirrorMaker runs here), which is issue 18's case "offsets already on failover". The testbed's
brokers set ``group.initial.rebalance.delay.ms=0``; Kafka's default (3 s) would delay the first
join of a group that is empty on the new cluster by that much.

Setup: two Apache Kafka clusters with different broker ids (main: node 1, failover: node 7; one
node each by default so the measurement is not starved of CPU on a 2-core machine, ``--main-nodes
3`` for three), the gateway in front of them. Per client: a fresh topic (3 partitions) on both
clusters and one producer through the gateway with the library's *default* settings (plus one
librdkafka variant without KIP-899 re-bootstrap, see :data:`CLIENTS`; the Java producer runs in a
JVM, :mod:`java_producer`), sending sequence-numbered keyed records at a steady rate (200/s);
then ``--switches`` switches alternating main -> failover -> main ... through the
Conduktor-compatible admin call.

Method: ``T_k`` is the monotonic time just before switch request ``k`` is sent to cluster
``C_k``. Its latency is ``A - T_k`` where ``A`` is the earliest delivery report among records
*sent* at or after ``T_k`` (and before ``T_{k+1}``) that are stored on ``C_k``. Where a record is
stored is not inferred from the gateway: both clusters are read directly (each partition from the
beginning) and every sequence number is attributed to the cluster(s) holding it. Such a record
can only be on ``C_k`` if it went through the switched gateway, and its acknowledgement came from
``C_k`` (a copy on both clusters is a retry whose last, acknowledged attempt went to the
gateway's active cluster, ``C_k``). The next switch waits until such a record has been seen on
``C_k`` (at most 30 s) plus ``--dwell`` seconds (1 s); a switch with no such record is a miss.

    python bench/switch_latency.py [--switches 20] [--clients kafka-python,aiokafka] [--smoke]
                                   [--dwell 1] [--main-nodes 1|3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import java_producer

from kafka_testbed import (
    admin,
    fetching,
    gateways,
    launching,
    process_producers,
    versions,
    workloads,
)
from kafka_testbed.gateways import GatewayProcess
from kafka_testbed.workloads import ClusterTail, SequencedProducer

CLUSTERS = ("main", "failover")
FAILOVER_NODE_IDS = (7,)
PARTITIONS = 3
RATE = 200.0
FULL_SWITCHES = 20
SMOKE_SWITCHES = 2
DWELL_SECONDS = 1.0
SWITCH_TIMEOUT_SECONDS = 30.0
PROCESS_SECONDS = 3600.0
"""A producer program's own run bound; the benchmark stops it when its switches are done."""
FIRST_ACK_TIMEOUT_SECONDS = 60.0
LAND_TIMEOUT_SECONDS = 30.0
GOAL_P50_SECONDS = 0.5
GOAL_P99_SECONDS = 2.0

CLIENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "confluent-kafka": ("confluent-kafka", {}),
    "confluent-kafka/no-rebootstrap": ("confluent-kafka", {"metadata.recovery.strategy": "none"}),
    "kafka-python": ("kafka-python", {}),
    "aiokafka": ("aiokafka", {}),
    f"java {versions.KAFKA_VERSION}": ("java", {}),
    f"java {versions.OLD_CLIENTS_VERSION}": ("java-old", {}),
    "franz-go": ("franz-go", {}),
}
"""Measured name -> (library, settings on top of its defaults).

librdkafka >= 2.10 re-bootstraps (KIP-899) when every known broker is down, which is exactly what
a switch looks like to it; it then waits for its 1 s timer to query metadata again. The
``no-rebootstrap`` variant shows what the default costs: it reconnects to the broker addresses it
learned (which the gateway keeps serving). The Java client runs in both a current version and the
newest one without KIP-899 (3.7); franz-go runs as a Go program of its own
(:mod:`kafka_testbed.process_producers`).
"""
PROGRAM_CONSUMER_SETTINGS: dict[str, dict[str, Any]] = {"franz-go": {"log-level": "info"}}
"""franz-go's group log (joins, errors and back-offs) goes to its output file in the work folder:
how its rejoin back-off was found to grow by one step per switch."""
JAVA_JARS: dict[str, Callable[[], Path]] = {
    "java": fetching.fetch_kafka_jars,
    "java-old": fetching.fetch_old_clients,
}

PROGRAM_CONSUMERS = {
    "java": f"java-{versions.KAFKA_VERSION}",
    "java-old": f"java-{versions.OLD_CLIENTS_VERSION}",
    "franz-go": "franz-go",
}
"""Library -> its consumer program (:data:`process_producers.PROCESS_CONSUMERS`)."""


class RunningProducer(Protocol):
    """A producer sending sequence-numbered records: in this process or in a JVM."""

    log: workloads.ProducerLog

    def stop(self, flush_timeout: float = ...) -> None: ...


@dataclass(frozen=True)
class SwitchMark:
    to: str
    sent_at: float  # monotonic, just before the request
    answered_ms: float
    closed_connections: int


@dataclass
class ClientResult:
    client: str
    switches: int
    latencies_ms: list[float | None] = field(default_factory=list)
    """Per switch, in order; ``None`` = no acknowledgement by the new cluster (a miss)."""
    http_ms: list[float] = field(default_factory=list)
    closed_connections: list[int] = field(default_factory=list)
    sent: int = 0
    acked: int = 0
    failed: int = 0
    missing: int = 0
    on_both: int = 0
    first_error: str | None = None
    resumed_ms: list[float | None] = field(default_factory=list)
    """Per switch: the consumer's first read of a record only the new cluster holds."""
    received: int = 0
    consumer_error: str | None = None

    def measured(self) -> list[float]:
        return sorted(value for value in self.latencies_ms if value is not None)

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile of the producer's latencies; a miss counts as infinitely slow."""
        return _percentile(self.latencies_ms, fraction)

    def consumer_percentile(self, fraction: float) -> float | None:
        return _percentile(self.resumed_ms, fraction)

    def meets_goal(self) -> bool:
        return _within_goal(self.latencies_ms) and _within_goal(self.resumed_ms)


def _percentile(latencies: Sequence[float | None], fraction: float) -> float | None:
    """Nearest-rank percentile; a miss (``None``) counts as infinitely slow."""
    values = sorted(math.inf if v is None else v for v in latencies)
    if not values:
        return None
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


def _within_goal(latencies: Sequence[float | None]) -> bool:
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    return (
        p50 is not None
        and p99 is not None
        and p50 < GOAL_P50_SECONDS * 1000
        and p99 < GOAL_P99_SECONDS * 1000
    )


# -- Lab ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    bootstraps: dict[str, str]  # direct, by cluster name
    gateway: GatewayProcess
    workdir: Path


@contextmanager
def lab(main_nodes: int, workdir: Path) -> Iterator[Lab]:
    main = launching.start_kafka(range(1, main_nodes + 1), name="bench-main")
    try:
        failover = launching.start_kafka(FAILOVER_NODE_IDS, name="bench-failover")
        try:
            bootstraps = {"main": main.bootstrap, "failover": failover.bootstrap}
            gateway = gateways.start_gateway(bootstraps, workdir=workdir)
            try:
                yield Lab(bootstraps, gateway, workdir)
            finally:
                gateway.stop()
        finally:
            failover.stop()
    finally:
        main.stop()


# -- Measuring one client -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How one client is measured."""

    switches: int
    dwell: float
    """Seconds between the new cluster's first ack and the next switch."""
    settings: Mapping[str, Any]
    """Client settings on top of the library's defaults (only log routing is set here)."""


def measure_client(lab: Lab, client: str, plan: Plan) -> ClientResult:
    """Run the switches for one entry of :data:`CLIENTS` on a fresh topic."""
    topic = f"latency-{re.sub(r'[^A-Za-z0-9._-]', '-', client)}-{uuid.uuid4().hex[:6]}"
    for bootstrap in lab.bootstraps.values():
        admin.create_topic(bootstrap, topic, partitions=PARTITIONS)
    tails = {
        name: ClusterTail(bootstrap, topic, PARTITIONS, cluster=name).start()
        for name, bootstrap in lab.bootstraps.items()
    }
    try:
        return _drive(lab, client, topic, plan, tails)
    finally:
        for tail in tails.values():
            tail.stop()


def _drive(
    lab: Lab, client: str, topic: str, plan: Plan, tails: Mapping[str, ClusterTail]
) -> ClientResult:
    consumer = _start_consumer(lab, client, topic, plan)
    try:
        producer = _start_producer(lab, client, topic, plan)
        try:
            _wait_first_ack(producer)
            _wait_first_receipt(consumer)
            marks = [
                _switch_and_wait(lab, producer, consumer, tails, plan.dwell)
                for _ in range(plan.switches)
            ]
        finally:
            producer.stop(flush_timeout=SWITCH_TIMEOUT_SECONDS)
    finally:
        consumer.stop()
    _, acked, _ = producer.log.snapshot()
    missing = workloads.wait_until_landed(tails.values(), acked, LAND_TIMEOUT_SECONDS)
    result = _result(client, marks, producer.log, workloads.landed(tails.values()), missing)
    _add_consumer(result, marks, producer.log, consumer, workloads.landed(tails.values()))
    return result


def _start_consumer(lab: Lab, client: str, topic: str, plan: Plan) -> workloads.ConsumerClient:
    library, settings = CLIENTS[client]
    group = f"resume-{topic}"
    if library in PROGRAM_CONSUMERS:
        make = process_producers.PROCESS_CONSUMERS[PROGRAM_CONSUMERS[library]]
        return make(
            lab.gateway.bootstrap,
            topic,
            group,
            seconds=PROCESS_SECONDS,
            settings=PROGRAM_CONSUMER_SETTINGS.get(library),
            log_dir=lab.workdir,
        ).start()
    if library == "confluent-kafka":
        chosen = {**settings, **plan.settings}
        return workloads.GroupConsumer(lab.gateway.bootstrap, topic, group, chosen).start()
    return workloads.start_group_consumer(library, lab.gateway.bootstrap, topic, group)


def _start_producer(lab: Lab, client: str, topic: str, plan: Plan) -> RunningProducer:
    library, settings = CLIENTS[client]
    if library in JAVA_JARS:
        return java_producer.JavaSequencedProducer(
            lab.gateway.bootstrap,
            topic,
            rate=RATE,
            jars=JAVA_JARS[library](),
            log_path=lab.workdir / f"{topic}.log",
        )
    if library in process_producers.PROCESS_PRODUCERS:  # a program of its own (franz-go)
        make = process_producers.PROCESS_PRODUCERS[library]
        return make(
            lab.gateway.bootstrap, topic, rate=RATE, seconds=PROCESS_SECONDS, log_dir=lab.workdir
        ).start()
    factory = workloads.PRODUCER_CLIENTS[library]
    producer_client = factory(lab.gateway.bootstrap, {**settings, **plan.settings})
    return SequencedProducer(producer_client, topic, rate=RATE).start()


def _wait_first_ack(producer: RunningProducer) -> None:
    deadline = time.monotonic() + FIRST_ACK_TIMEOUT_SECONDS
    while not producer.log.snapshot()[1]:
        if time.monotonic() > deadline:
            raise TimeoutError("nothing acknowledged through the gateway")
        time.sleep(0.05)


def _wait_first_receipt(consumer: workloads.ConsumerClient) -> None:
    deadline = time.monotonic() + FIRST_ACK_TIMEOUT_SECONDS
    while not consumer.received():
        if consumer.failure is not None or time.monotonic() > deadline:
            raise TimeoutError(f"the consumer read nothing through the gateway: {consumer.failure}")
        time.sleep(0.05)


def _switch_and_wait(
    lab: Lab,
    producer: RunningProducer,
    consumer: workloads.ConsumerClient,
    tails: Mapping[str, ClusterTail],
    dwell: float,
) -> SwitchMark:
    to = _other(str(lab.gateway.state()["active"]))
    sent_at = time.monotonic()
    answer = lab.gateway.switch(to)
    answered_ms = (time.monotonic() - sent_at) * 1000
    if answer.status != 200:
        raise RuntimeError(f"switch to {to} refused: HTTP {answer.status} {answer.body}")
    _wait_landed_after(producer, tails[to], sent_at)
    _wait_read_after(producer, consumer, tails, to, sent_at)
    time.sleep(dwell)
    return SwitchMark(to, sent_at, answered_ms, int(answer.body.get("closedConnections", -1)))


def _other(cluster: str) -> str:
    return CLUSTERS[1 - CLUSTERS.index(cluster)]


def _wait_landed_after(producer: RunningProducer, tail: ClusterTail, since: float) -> bool:
    """Until an acknowledged record sent after ``since`` is seen on ``tail``'s cluster."""
    deadline = time.monotonic() + SWITCH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        sent_at, acked_at, _ = producer.log.snapshot()
        fresh = {seq for seq in acked_at if sent_at.get(seq, 0.0) >= since}
        if fresh & tail.sequences():
            return True
        time.sleep(0.05)
    return False


def _wait_read_after(
    producer: RunningProducer,
    consumer: workloads.ConsumerClient,
    tails: Mapping[str, ClusterTail],
    to: str,
    since: float,
) -> bool:
    """Until the consumer has read a record sent after ``since`` that only ``to`` holds."""
    deadline = time.monotonic() + SWITCH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        sent_at = producer.log.snapshot()[0]
        only_new = tails[to].sequences() - tails[_other(to)].sequences()
        if any(
            receipt.at >= since and receipt.seq in only_new and sent_at.get(receipt.seq, 0) >= since
            for receipt in consumer.received()
        ):
            return True
        time.sleep(0.05)
    return False


def _add_consumer(
    result: ClientResult,
    marks: Sequence[SwitchMark],
    log: workloads.ProducerLog,
    consumer: workloads.ConsumerClient,
    where: Mapping[int, frozenset[str]],
) -> None:
    sent_at = log.snapshot()[0]
    receipts = consumer.received()
    result.received = len({receipt.seq for receipt in receipts})
    result.consumer_error = None if consumer.failure is None else repr(consumer.failure)
    ends = [mark.sent_at for mark in marks[1:]] + [math.inf]
    for mark, end in zip(marks, ends, strict=True):
        first = min(
            (
                receipt.at
                for receipt in receipts
                if receipt.at >= mark.sent_at
                and where.get(receipt.seq) == frozenset({mark.to})
                and mark.sent_at <= sent_at.get(receipt.seq, -math.inf) < end
            ),
            default=None,
        )
        result.resumed_ms.append(None if first is None else (first - mark.sent_at) * 1000)


def _result(
    client: str,
    marks: Sequence[SwitchMark],
    log: workloads.ProducerLog,
    where: Mapping[int, frozenset[str]],
    missing: set[int],
) -> ClientResult:
    sent_at, acked_at, errors = log.snapshot()
    result = ClientResult(client, len(marks), sent=len(sent_at), acked=len(acked_at))
    result.failed, result.missing = len(errors), len(missing)
    result.on_both = sum(1 for clusters in where.values() if len(clusters) > 1)
    result.first_error = next(iter(errors.values()), None)
    ends = [mark.sent_at for mark in marks[1:]] + [math.inf]
    for mark, end in zip(marks, ends, strict=True):
        first = workloads.first_ack_on(
            mark.to, log, where, after=mark.sent_at, sent_after=mark.sent_at, sent_before=end
        )
        result.latencies_ms.append(None if first is None else (first - mark.sent_at) * 1000)
        result.http_ms.append(mark.answered_ms)
        result.closed_connections.append(mark.closed_connections)
    return result


# -- Report ---------------------------------------------------------------------------------------


def table(results: Sequence[ClientResult]) -> str:
    lines = [
        f"switch latency: switch request -> first ack by the new cluster (produce) and first "
        f"record read from it (consume), {RATE:.0f} records/s, "
        f"goal p50 < {GOAL_P50_SECONDS * 1000:.0f} ms, p99 < {GOAL_P99_SECONDS * 1000:.0f} ms",
        f"  {'':<30} {'':>8} {'produce':>26} {'':>6} {'consume':>17}",
        f"  {'client':<30} {'switches':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'misses':>6}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'misses':>6}"
        f" {'acked':>7} {'failed':>6} {'missing':>7} {'on both':>7}  goal",
    ]
    for r in results:
        p50, p99, worst = r.percentile(0.5), r.percentile(0.99), r.percentile(1.0)
        misses = sum(1 for value in r.latencies_ms if value is None)
        c50, c99 = r.consumer_percentile(0.5), r.consumer_percentile(0.99)
        c_misses = sum(1 for value in r.resumed_ms if value is None)
        lines.append(
            f"  {r.client:<30} {r.switches:>8} {_ms(p50):>8} {_ms(p99):>8} {_ms(worst):>8} "
            f"{misses:>6} {_ms(c50):>8} {_ms(c99):>8} {c_misses:>6} "
            f"{r.acked:>7} {r.failed:>6} {r.missing:>7} {r.on_both:>7}  "
            f"{'met' if r.meets_goal() else 'MISSED'}"
        )
    for r in results:
        if r.first_error:
            lines.append(f"  {r.client}: {r.failed} records failed, first error: {r.first_error}")
        if r.consumer_error:
            lines.append(f"  {r.client}: the consumer failed: {r.consumer_error}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "miss" if math.isinf(value) else f"{value:.0f}"


def _quiet_client_logs(workdir: Path) -> dict[str, Any]:
    """Disconnect warnings during switches are expected: clients log to a file, not stderr."""
    handler = logging.FileHandler(workdir / "clients.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    return {"logger": logging.getLogger("confluent_kafka")}


def run(
    *,
    smoke: bool = False,
    switches: int | None = None,
    clients: Sequence[str] = tuple(CLIENTS),
    main_nodes: int = 1,
    dwell: float = DWELL_SECONDS,
) -> dict[str, Any]:
    """Measure every client and print the table; return a JSON-ready result."""
    switches = switches or (SMOKE_SWITCHES if smoke else FULL_SWITCHES)
    workdir = Path(tempfile.mkdtemp(prefix="bench-switch-latency-"))
    confluent_settings = _quiet_client_logs(workdir)
    results = []
    with lab(main_nodes, workdir) as running:
        for client in clients:
            settings = confluent_settings if CLIENTS[client][0] == "confluent-kafka" else {}
            print(f"  measuring {client}: {switches} switches ...", file=sys.stderr, flush=True)
            results.append(measure_client(running, client, Plan(switches, dwell, settings)))
    print(table(results), flush=True)
    print(f"  (client and gateway logs in {workdir})", flush=True)
    return {
        "rate": RATE,
        "main_nodes": main_nodes,
        "dwell_seconds": dwell,
        "results": [
            asdict(r)
            | {
                "p50_ms": _finite(r.percentile(0.5)),
                "p99_ms": _finite(r.percentile(0.99)),
                "max_ms": _finite(r.percentile(1.0)),
                "consumer_p50_ms": _finite(r.consumer_percentile(0.5)),
                "consumer_p99_ms": _finite(r.consumer_percentile(0.99)),
                "goal_met": r.meets_goal(),
            }
            for r in results
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--smoke", action="store_true", help=f"{SMOKE_SWITCHES} switches per client"
    )
    parser.add_argument("--switches", type=int, help=f"per client (default {FULL_SWITCHES})")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    parser.add_argument("--main-nodes", type=int, default=1, choices=(1, 3))
    parser.add_argument(
        "--dwell",
        type=float,
        default=DWELL_SECONDS,
        help="seconds on a cluster after its first ack",
    )
    parser.add_argument("--json", help="also write the result to this file")
    options = parser.parse_args(argv)
    result = run(
        smoke=options.smoke,
        switches=options.switches,
        clients=options.clients.split(","),
        main_nodes=options.main_nodes,
        dwell=options.dwell,
    )
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=1))
    return 0


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a miss is ``null``."""
    return None if value is None or math.isinf(value) else round(value, 1)


if __name__ == "__main__":
    sys.exit(main())
