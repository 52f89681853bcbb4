"""``make demo``: watch a switch move a live producer and consumer group to the failover cluster.

Why it exists: the gateway's promise ("one call, every client on the other cluster within
seconds, nothing lost") is best shown, not told. From a fresh clone this starts two real Apache
Kafka clusters with different broker ids (main: nodes 1,2,3; failover: node 7), the gateway in
front of them, an idempotent keyed producer and a consumer group through the gateway, switches
after a few seconds, and prints a per-second timeline. Which cluster holds each record is not
guessed from the gateway's state: both clusters are read directly afterwards and every sequence
number is attributed to the cluster that really stores it (:mod:`kafka_testbed.workloads`).

Exits 0 when every acknowledged record is on some cluster and both clusters acknowledged records;
stops every process it started on the way out, Ctrl-C included (exit status 130).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_testbed import admin, clusters, gateways, launching, versions, workloads
from kafka_testbed.clusters import Cluster
from kafka_testbed.errors import TestbedError
from kafka_testbed.gateways import AdminAnswer, GatewayProcess
from kafka_testbed.workloads import ClusterTail, GroupConsumer, Receipt, SequencedProducer

MAIN_NODE_IDS = (1, 2, 3)
FAILOVER_NODE_IDS = (7,)
RATE = 200.0
SECONDS_BEFORE_SWITCH = 5.0
SECONDS_AFTER_SWITCH = 5.0
PARTITIONS = 3
LAND_TIMEOUT_SECONDS = 30.0
FLUSH_TIMEOUT_SECONDS = 30.0
WARM_UP_TIMEOUT_SECONDS = 60.0
STEADY_SECONDS = 1.0
MAIN, FAILOVER = "main", "failover"
TIMELINE_HEADERS = (
    "  second",
    "acked by main",
    "by failover",
    "consumed from main",
    "from failover",
)


@dataclass(frozen=True)
class Lab:
    main: Cluster
    failover: Cluster
    gateway: GatewayProcess
    workdir: Path


@dataclass(frozen=True)
class Run:
    """What happened, with every time on the monotonic clock."""

    started: float
    switch_sent: float
    switch_answered: float
    answer: AdminAnswer
    log: workloads.ProducerLog
    receipts: list[Receipt]
    where: dict[int, frozenset[str]]
    placements: dict[str, set[tuple[int, int, int]]]
    missing: set[int]


def main() -> int:
    try:
        return _demo()
    except KeyboardInterrupt:
        print("\ninterrupted: every process the demo started is stopped", file=sys.stderr)
        return 130


def _demo() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kafka-failover-demo-"))
    with _lab(workdir) as lab:
        _print_setup(lab)
        run = _drive(lab, topic=f"demo-orders-{uuid.uuid4().hex[:6]}")
    ok = _report(run)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"client and gateway logs kept in {workdir}")
    return 0 if ok else 1


@contextlib.contextmanager
def _lab(workdir: Path) -> Iterator[Lab]:
    print("starting two Kafka clusters and the gateway (about 15 s)...", flush=True)
    started: list[Cluster] = []
    with contextlib.ExitStack() as stack:
        stack.push(_stopping(started))
        started.append(launching.start_kafka(MAIN_NODE_IDS, name=MAIN))
        started.append(launching.start_kafka(FAILOVER_NODE_IDS, name=FAILOVER))
        main, failover = started
        gateway = gateways.start_gateway(
            {MAIN: main.bootstrap, FAILOVER: failover.bootstrap}, workdir=workdir
        )
        stack.callback(gateway.stop)
        yield Lab(main, failover, gateway, workdir)


def _stopping(started: list[Cluster]) -> Callable[..., None]:
    """Stop both clusters at once; gracefully, unless the user pressed Ctrl-C and is waiting."""

    def stop(exc_type: type[BaseException] | None, *_: object) -> None:
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        clusters.stop_all(started, 0.0 if interrupted else clusters.STOP_GRACE_SECONDS)

    return stop


def _drive(lab: Lab, *, topic: str) -> Run:
    for cluster in (lab.main, lab.failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    tails = [
        ClusterTail(lab.main.bootstrap, topic, PARTITIONS, cluster=MAIN).start(),
        ClusterTail(lab.failover.bootstrap, topic, PARTITIONS, cluster=FAILOVER).start(),
    ]
    settings = _client_settings(lab.workdir)
    consumer = GroupConsumer(lab.gateway.bootstrap, topic, "demo-readers", settings).start()
    producer_settings = {**settings, "enable.idempotence": True}
    client = workloads.ConfluentProducer(lab.gateway.bootstrap, producer_settings)
    producer = SequencedProducer(client, topic, rate=RATE).start()
    try:
        return _switch_midway(lab, producer, consumer, tails)
    finally:
        consumer.stop()
        for tail in tails:
            tail.stop()


def _switch_midway(
    lab: Lab, producer: SequencedProducer, consumer: GroupConsumer, tails: list[ClusterTail]
) -> Run:
    started = _warm_up(producer, consumer)
    _sleep_until(started + SECONDS_BEFORE_SWITCH)
    switch_sent = time.monotonic()
    answer = lab.gateway.switch(FAILOVER)
    switch_answered = time.monotonic()
    _sleep_until(switch_sent + SECONDS_AFTER_SWITCH)
    producer.stop(FLUSH_TIMEOUT_SECONDS)
    _, acked, _ = producer.log.snapshot()
    missing = workloads.wait_until_landed(tails, acked, LAND_TIMEOUT_SECONDS)
    return Run(
        started,
        switch_sent,
        switch_answered,
        answer,
        producer.log,
        consumer.received(),
        workloads.landed(tails),
        {tail.cluster: tail.placements() for tail in tails},
        missing,
    )


def _warm_up(producer: SequencedProducer, consumer: GroupConsumer) -> float:
    """Wait until the producer is acknowledged and the group consumes, then steady for a while.

    Connecting and the first group join take a few seconds; the timeline starts after them so
    that its rows before the switch show the steady state.
    """
    deadline = time.monotonic() + WARM_UP_TIMEOUT_SECONDS
    while not (producer.log.snapshot()[1] and consumer.received()):
        if time.monotonic() > deadline:
            raise TestbedError(
                f"the producer or the consumer group got nothing through the gateway within "
                f"{WARM_UP_TIMEOUT_SECONDS:.0f}s"
            )
        time.sleep(0.05)
    time.sleep(STEADY_SECONDS)
    return time.monotonic()


def _client_settings(workdir: Path) -> dict[str, Any]:
    """Client logs (disconnects during the switch are expected) go to a file, not the screen."""
    logger = logging.getLogger("kafka_testbed.demo.clients")
    logger.propagate = False
    handler = logging.FileHandler(workdir / "clients.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    return {"logger": logger}


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


# -- Report ---------------------------------------------------------------------------------------


def _print_setup(lab: Lab) -> None:
    version = versions.KAFKA_VERSION
    print()
    for name, cluster in ((MAIN, lab.main), (FAILOVER, lab.failover)):
        ids = ",".join(str(node_id) for node_id in cluster.nodes)
        nodes = "nodes" if len(cluster.nodes) > 1 else "node"
        print(f"  {name:<9} Apache Kafka {version}, {nodes} {ids:<6} {cluster.bootstrap}")
    print(f"  {'gateway':<9} {lab.gateway.bootstrap}, admin API {lab.gateway.admin_url}")
    print(f"  {'clients':<9} confluent-kafka: idempotent producer, {RATE:.0f} keyed records/s;")
    print(f"  {'':<9} consumer group 'demo-readers'; both through the gateway")
    print(f"  {'switch':<9} to failover after {SECONDS_BEFORE_SWITCH:.0f} s\n", flush=True)


def _report(run: Run) -> bool:
    _print_timeline(run)
    print()
    _print_switch(run)
    return _print_summary(run)


def _ack_cluster(run: Run, seq: int, acked_at: float) -> str | None:
    clusters_holding = run.where.get(seq, frozenset())
    if len(clusters_holding) > 1:  # a retried duplicate: the retry, after the switch, acked it
        return FAILOVER if acked_at >= run.switch_sent else MAIN
    return next(iter(clusters_holding), None)


def _receipt_cluster(run: Run, receipt: Receipt) -> str | None:
    placement = (receipt.seq, receipt.partition, receipt.offset)
    holding = [name for name, placed in run.placements.items() if placement in placed]
    if len(holding) > 1:
        return FAILOVER if receipt.at >= run.switch_sent else MAIN
    return holding[0] if holding else None


def _per_second(run: Run) -> tuple[Counter[tuple[int, str]], Counter[tuple[int, str]]]:
    _, acked_at, _ = run.log.snapshot()
    acks: Counter[tuple[int, str]] = Counter()
    for seq, at in acked_at.items():
        acks[(_second(run, at), _ack_cluster(run, seq, at) or "?")] += 1
    reads: Counter[tuple[int, str]] = Counter()
    for receipt in run.receipts:
        reads[(_second(run, receipt.at), _receipt_cluster(run, receipt) or "?")] += 1
    return acks, reads


def _second(run: Run, at: float) -> int:
    """Whole seconds since the timeline started; every warm-up event is second -1."""
    return max(-1, math.floor(at - run.started))


def _print_timeline(run: Run) -> None:
    acks, reads = _per_second(run)
    last = max((second for second, _ in [*acks, *reads]), default=0)
    notes = _notes(run)
    print("  ".join(TIMELINE_HEADERS))
    for second in range(-1, last + 1):
        label = "warm-up" if second < 0 else f"{second}-{second + 1}"
        cells = [label, str(acks[(second, MAIN)]), str(acks[(second, FAILOVER)])]
        cells += [str(reads[(second, MAIN)]), str(reads[(second, FAILOVER)])]
        row = "  ".join(cell.rjust(len(h)) for cell, h in zip(cells, TIMELINE_HEADERS, strict=True))
        print(f"{row}  {notes.get(second, '')}".rstrip())


def _notes(run: Run) -> dict[int, str]:
    notes: dict[int, list[str]] = {_second(run, run.switch_sent): ["switch"]}
    events = (("first ack by failover", _first_ack(run)), ("consumer resumed", _resumed(run)))
    for label, at in events:
        if at is not None:
            notes.setdefault(_second(run, at), []).append(label)
    return {second: "<- " + ", ".join(labels) for second, labels in notes.items()}


def _first_ack(run: Run) -> float | None:
    return workloads.first_ack_on(FAILOVER, run.log, run.where, after=run.switch_sent)


def _resumed(run: Run) -> float | None:
    times = [r.at for r in run.receipts if _receipt_cluster(run, r) == FAILOVER]
    return min(times, default=None)


def _print_switch(run: Run) -> None:
    body: Mapping[str, Any] = run.answer.body
    answered_ms = (run.switch_answered - run.switch_sent) * 1000
    print(
        f"switch     HTTP {run.answer.status} in {answered_ms:.0f} ms: the gateway switched in"
        f" {body.get('durationMs', '?')} ms: moved {body.get('movedConnections', '?')} client"
        f" connections to failover under their clients, closed {body.get('closedConnections', '?')}"
    )
    print(f"producer   first ack by failover {_after_switch(run, _first_ack(run))}")
    print(f"consumer   first record from failover {_after_switch(run, _resumed(run))}")
    again = len(run.receipts) - len({(r.seq, r.partition, r.offset) for r in run.receipts})
    print(f"           {len(run.receipts)} records consumed, {again} of them again (at least once)")


def _after_switch(run: Run, at: float | None) -> str:
    if at is None:
        return "NEVER (within the demo)"
    return f"{(at - run.switch_sent) * 1000:.0f} ms after the switch request"


def _print_summary(run: Run) -> bool:
    sent_at, acked_at, errors = run.log.snapshot()
    acked = set(acked_at)
    on_main = {seq for seq in acked if MAIN in run.where.get(seq, ())}
    on_failover = {seq for seq in acked if FAILOVER in run.where.get(seq, ())}
    missing = acked - on_main - on_failover
    ok = not missing and bool(on_main) and bool(on_failover) and run.answer.status == 200
    print(
        f"records    sent {len(sent_at)}, acked {len(acked)}, failed {len(errors)}; "
        f"on main {len(on_main)}, on failover {len(on_failover)}, "
        f"on both {len(on_main & on_failover)}, missing from both {len(missing)}"
    )
    if on_main & on_failover:
        print(
            "           (on both: in flight at the switch, written by main but unanswered, "
            "so retried on failover;\n            idempotence is per cluster)"
        )
    print(f"result     {'OK' if ok else 'FAILED'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
