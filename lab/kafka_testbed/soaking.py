"""``make soak``: hours of load through a gateway fleet, with faults; every record counted.

Why it exists: a DR gateway sits in the data path for months and is exercised hardest on the
worst day; minutes of benchmarks say nothing of leaks, lost records after the fifth switch or a
pod that comes back on the wrong cluster. This runs issue 19's soak on real processes:

- two Apache Kafka clusters (main: nodes 1-3, or node 1 for the smoke; failover: node 7) and
  MirrorMaker 2 copying main -> failover (identity policy, group offsets synced);
- three gateway processes (:mod:`kafka_testbed.gateway_fleet`) behind one service address, each
  following an ``activeFile`` as the operator's ConfigMap does, so a restarted pod comes back on
  the cluster the fleet is on;
- thousands of mostly idle connections straight to the pods
  (:mod:`kafka_testbed.idle_connections`), plus one producer and one consumer group of every
  client family (confluent-kafka, kafka-python, aiokafka in this process; Java 4.x, Java 3.7.2
  and franz-go as programs) at a modest steady rate, each family on a topic of its own, every
  record sequence-numbered;
- the faults of :mod:`kafka_testbed.soak_schedule`, spread over the run: planned switches,
  immediate switches, a main broker killed (SIGKILL) and restarted, a gateway pod killed and
  restarted, MirrorMaker paused (SIGSTOP) and resumed.

Both clusters are read directly all along (:class:`~kafka_testbed.workloads.ClusterTail`), which
also measures the replication gap at each immediate switch to failover; at the end every
acknowledged record is looked up on both. Each pod's RSS, open descriptors and CPU are read from
/proc every ``--sample-seconds``. :mod:`kafka_testbed.soak_accounting` computes the figures; the
report is printed and written to ``soak-report.json``, and the exit status is 1 when a goal of
issue 19 is missed (:func:`kafka_testbed.soak_schedule.missed_goals`). The lab, the faults and
the sampler are :mod:`kafka_testbed.soak_lab`; this module holds the clients, the run and the
report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import faulthandler
import json
import logging
import math
import re
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kafka_testbed import (
    admin,
    drill,
    process_producers,
    soak_accounting,
    soak_lab,
    soak_schedule,
    workloads,
)
from kafka_testbed.errors import TestbedError
from kafka_testbed.idle_connections import IdleConnections
from kafka_testbed.raw_protocol import RawConnection
from kafka_testbed.soak_accounting import FamilyRecords
from kafka_testbed.soak_lab import (
    FAMILIES,
    IN_PROCESS,
    SMOKE,
    Family,
    FaultRunner,
    GatewaySampler,
    SoakConfig,
    SoakLab,
)
from kafka_testbed.workloads import ClusterTail

__all__ = ["FAMILIES", "SMOKE", "SoakConfig", "main", "run_soak", "summary"]

PARTITIONS = 3
METADATA = 3
TOPIC_VISIBLE_SECONDS = 30.0
PRODUCER_SETTINGS: dict[str, dict[str, Any]] = {
    "confluent-kafka": {"enable.idempotence": True},
    "kafka-python": {},  # idempotent with acks=all by default since 2.1
    "aiokafka": {"acks": "all", "enable_idempotence": True},
}
"""Every family writes with acks=all (Java and franz-go by default): a broker killed on a 3-broker
main must not take acknowledged records with it."""
PROGRAM_SETTINGS: dict[str, dict[str, str]] = {}
"""Settings of the program families on top of their defaults: none. (franz-go ran with gzip until
the planned switchover read snappy, lz4 and zstd batches; its default is snappy.)"""
LAND_TIMEOUT_SECONDS = 90.0
FLUSH_TIMEOUT_SECONDS = 30.0
PROGRAM_MARGIN_SECONDS = 600.0
REVIVE_CHECK_SECONDS = 1.0
STALL_SECONDS = 120.0
"""No acknowledgement for this long while records are sent: a stalled producer, logged with
every thread's stack (an in-process library's sender thread among them)."""
DEFAULT_REPORT = Path("soak-report.json")
log = logging.getLogger("kafka_testbed.soaking")


# -- Clients ----------------------------------------------------------------------------------


def _wait_until_every_broker_knows(addresses: Iterable[str], topic: str) -> None:
    """Each broker, asked itself, lists every partition of ``topic`` with a leader.

    kafka-python 3.0.12's group leader, when its metadata lacks the topic at its first join
    ("No partition metadata for topic"), assigns nothing and the group may never rebalance:
    one hour-long run's kafka-python group consumed nothing, and 2 of 6 consumers started
    straight against a 3-broker cluster right after creating their topic did the same (no
    gateway in between). An application whose topic exists does not meet this."""
    deadline = time.monotonic() + TOPIC_VISIBLE_SECONDS
    for address in addresses:
        while not _knows(address, topic):
            if time.monotonic() > deadline:
                raise TestbedError(f"broker {address} does not list topic {topic!r}")
            time.sleep(0.1)


def _knows(address: str, topic: str) -> bool:
    body = {
        "Topics": [{"Name": topic, "TopicId": uuid.UUID(int=0)}],
        "AllowAutoTopicCreation": False,
        "IncludeTopicAuthorizedOperations": False,
    }
    with RawConnection(address) as connection:
        answer = connection.request(METADATA, 12, body)
    found = [t for t in answer["Topics"] if t["Name"] == topic and t["ErrorCode"] == 0]
    leaders = [p["LeaderId"] for t in found for p in t["Partitions"]]
    return len(leaders) == PARTITIONS and all(leader >= 0 for leader in leaders)


def _start_family(lab: SoakLab, name: str, config: SoakConfig, run_seconds: float) -> Family:
    topic = f"soak-{re.sub(r'[^a-z0-9]+', '-', name)}-{uuid.uuid4().hex[:6]}"
    for cluster in (lab.failover, lab.main):  # failover first: MirrorMaker creates it otherwise
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
        _wait_until_every_broker_knows(cluster.brokers.values(), topic)
    tails = {
        cluster.name: ClusterTail(
            cluster.bootstrap, topic, PARTITIONS, cluster=cluster.name
        ).start()
        for cluster in (lab.main, lab.failover)
    }
    bootstrap, group = lab.fleet.bootstrap, f"{topic}-readers"
    log_dir = lab.workdir / "clients"
    log_dir.mkdir(exist_ok=True)
    if name in IN_PROCESS:
        settings = drill.client_log_settings(lab.workdir) if name == "confluent-kafka" else {}
        client = workloads.PRODUCER_CLIENTS[name](
            bootstrap, {**settings, **PRODUCER_SETTINGS[name]}
        )
        producer: Any = workloads.SequencedProducer(client, topic, rate=config.rate).start()
        consumer: Any = workloads.start_group_consumer(name, bootstrap, topic, group)
    else:
        seconds = run_seconds + PROGRAM_MARGIN_SECONDS
        producer = process_producers.PROCESS_PRODUCERS[name](
            bootstrap,
            topic,
            rate=config.rate,
            seconds=seconds,
            log_dir=log_dir,
            settings=PROGRAM_SETTINGS.get(name),
        ).start()
        consumer = process_producers.PROCESS_CONSUMERS[name](
            bootstrap, topic, group, seconds=seconds, log_dir=log_dir
        ).start()
    return Family(name, topic, producer, consumer, tails, bootstrap=bootstrap)


def _stop_producer(family: Family) -> str | None:
    """Stop and flush; the failure as text when the producer had died or could not flush (a
    client library's own timeout, such as kafka-python's KafkaTimeoutError): reported, counted
    against the run, and never allowed to take the report down with it."""
    try:
        family.producer.stop(FLUSH_TIMEOUT_SECONDS)
    except TestbedError as error:
        return f"{error}: {error.__cause__!r}"
    except Exception as error:  # any client library's failure to flush
        return f"stopping failed: {type(error).__name__}: {error}"
    return None


def _fatal_errors(family: Family, stopping: str | None) -> list[str]:
    found = [f"producer: {stopping}"] if stopping else []
    found += [f"producer FATAL: {error}" for error in getattr(family.producer, "fatal", [])]
    found += [f"consumer FATAL: {error}" for error in getattr(family.consumer, "fatal", [])]
    if family.consumer.failure is not None:
        found.append(f"consumer: {family.consumer.failure!r}")
    return found


def _retriable(error: BaseException | None) -> bool:
    """A client library error that says "try again" (kafka-python's and aiokafka's flag)."""
    return bool(getattr(error, "retriable", False))


def revive_consumers(families: Sequence[Family]) -> None:
    """Replace an in-process group member whose poll raised a retriable error, as an application
    that catches it and polls again would; the error is reported, not counted as fatal.

    kafka-python 3.0 raises ``KafkaConnectionError`` out of ``poll`` when its auto-commit meets a
    dropped connection (a gateway pod killed); our member thread ends on any exception."""
    for family in families:
        if family.name in IN_PROCESS and _retriable(family.consumer.failure):
            family.retired.append(family.consumer)
            group = f"{family.topic}-readers"
            family.consumer = workloads.start_group_consumer(
                family.name, family.bootstrap, family.topic, group
            )


@dataclasses.dataclass
class StallWatch:
    """When each family's producer stopped being acknowledged while it went on sending: logged
    once per stall (with the time into the run), every thread's stack saved to ``workdir``."""

    workdir: Path
    started: float
    _progress: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)
    stalls: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def check(self, families: Sequence[Family], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for family in families:
            log_ = family.producer.log
            acked, sent = len(log_.acked_at), len(log_.sent_at)
            last_acked, since = self._progress.get(family.name, (-1, now))
            if acked != last_acked:
                self._progress[family.name] = (acked, now)
            elif since != -math.inf and now - since >= STALL_SECONDS and sent > acked:
                self._stalled(family.name, acked, sent, since)
                self._progress[family.name] = (acked, -math.inf)  # once per stall

    def _stalled(self, name: str, acked: int, sent: int, since: float) -> None:
        stacks = self.workdir / f"stall-{name}-{len(self.stalls)}.txt"
        with stacks.open("w") as out:
            faulthandler.dump_traceback(out, all_threads=True)
        at = round(since - self.started, 1)
        self.stalls.append({"family": name, "since": at, "acked": acked, "sent": sent})
        log.warning(
            "%s: no acknowledgement since %.0f s into the run (%d of %d sent acknowledged); "
            "thread stacks in %s",
            name,
            at,
            acked,
            sent,
            stacks,
        )


def _received(family: Family) -> list[int]:
    members = [*family.retired, family.consumer]
    return [receipt.seq for member in members for receipt in member.received()]


def _retried(family: Family) -> list[str]:
    return [repr(member.failure) for member in family.retired]


# -- The run ----------------------------------------------------------------------------------


def run_soak(config: SoakConfig, workdir: Path) -> dict[str, Any]:
    """Start the lab, load it, carry out the plan, read everything back; the report."""
    soak_lab.raise_descriptor_limit(config.idle_connections)
    seconds = config.minutes * 60.0
    plan = soak_schedule.plan(seconds, warm_up=config.warm_up_seconds, tail=config.tail_seconds)
    with soak_lab.soak_lab(config, workdir) as lab:
        idle = IdleConnections(
            [pod.bootstrap for pod in lab.fleet.pods],
            config.idle_connections,
            heartbeat_seconds=config.heartbeat_seconds,
        ).start()
        families: list[Family] = []
        stopping: dict[str, str | None] = {}
        try:
            families = [_start_family(lab, name, config, seconds) for name in config.families]
            started = time.monotonic()
            sampler = GatewaySampler(lab.fleet, config.sample_seconds, started).start()
            faults = FaultRunner(lab, families, config)
            stalls = StallWatch(workdir, started)
            for planned in plan:
                _wait_until(started + planned.at, families, stalls)
                faults.run(planned, started)
            _wait_until(started + seconds, families, stalls)
            load_seconds = time.monotonic() - started
            idle_counts = dataclasses.asdict(idle.counts)
            stopping.update((family.name, _stop_producer(family)) for family in families)
            sampler.stop()
            return _report(
                config,
                families=families,
                faults=faults,
                sampler=sampler,
                stopping=stopping,
                load_seconds=load_seconds,
                idle=idle_counts,
                stalls=stalls.stalls,
            )
        finally:
            idle.stop()
            for family in families:
                _stop_quietly(family, producer=family.name not in stopping)


def _wait_until(deadline: float, families: Sequence[Family], stalls: StallWatch) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, REVIVE_CHECK_SECONDS))
        revive_consumers(families)
        stalls.check(families)


def _stop_quietly(family: Family, *, producer: bool) -> None:
    """After the report, or after an error: stop whatever still runs, errors aside."""
    if producer:
        with contextlib.suppress(Exception):
            family.producer.stop(1.0)
    for member in [*family.retired, family.consumer]:
        with contextlib.suppress(Exception):
            member.stop()
    for tail in family.tails.values():
        tail.stop()


def _read_back(family: Family) -> FamilyRecords:
    sent, acked, errors = family.producer.log.snapshot()
    workloads.wait_until_landed(family.tails.values(), set(acked), LAND_TIMEOUT_SECONDS)
    copies = {name: [seq for seq, _, _ in tail.placements()] for name, tail in family.tails.items()}
    return FamilyRecords(sent, acked, errors, copies, frozenset(family.gap), _received(family), [])


def _report(
    config: SoakConfig,
    *,
    families: Sequence[Family],
    faults: FaultRunner,
    sampler: GatewaySampler,
    stopping: dict[str, str | None],
    load_seconds: float,
    idle: dict[str, int],
    stalls: list[dict[str, Any]],
) -> dict[str, Any]:
    per_family = {}
    for family in families:
        records = dataclasses.replace(
            _read_back(family), fatal_errors=_fatal_errors(family, stopping[family.name])
        )
        per_family[family.name] = soak_accounting.family_report(records) | {
            "consumer_retriable_errors": _retried(family)
        }
    gateways = {
        host: soak_accounting.gateway_report(samples, config.warm_up_seconds)
        for host, samples in sampler.samples.items()
    }
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report: dict[str, Any] = {
        "minutes": round(load_seconds / 60.0, 2),
        "config": dataclasses.asdict(config),
        "families": per_family,
        "switches": faults.switches,
        "kills": faults.kills,
        "faults": [record.report() for record in faults.done],
        "fault_errors": [record.report() for record in faults.done if not record.ok],
        "gateways": gateways,
        "idle_connections": {"wanted": config.idle_connections, **idle},
        "cpu_seconds": {
            "gateways": round(sum(g["cpu_seconds"] for g in gateways.values()), 1),
            "runner": round(usage.ru_utime + usage.ru_stime, 1),
        },
        "longest_ack_wait_ms": max(
            (f["longest_ack_wait_ms"] for f in per_family.values()), default=0.0
        ),
        "producer_stalls": stalls,
    }
    report["missed_goals"] = soak_schedule.missed_goals(report)
    return report


# -- Output -----------------------------------------------------------------------------------

FAMILY_COLUMNS = (
    "sent", "acknowledged", "failed", "lost", "lost_in_gaps", "lost_outside_gaps",
    "duplicated", "consumed", "longest_ack_wait_ms",
)  # fmt: skip


GATEWAY_HEADER = (
    "| gateway | RSS after warm-up MiB | RSS end MiB | RSS slope MiB/h "
    "| fds after warm-up / max / end | CPU s | restarts |"
)


def summary(report: dict[str, Any]) -> str:
    """The report as Markdown tables (also valid README text)."""
    lines = [
        f"soak of {report['minutes']} min; switches {report['switches']}; kills "
        f"{report['kills']}; fault errors {len(report['fault_errors'])}; longest ack wait "
        f"{report['longest_ack_wait_ms']} ms; CPU s {report['cpu_seconds']}",
        "",
        "| family | " + " | ".join(FAMILY_COLUMNS) + " | fatal |",
        "|---" * (len(FAMILY_COLUMNS) + 2) + "|",
    ]
    for name, family in report["families"].items():
        cells = [str(family[column]) for column in FAMILY_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(family['fatal_errors'])} |")
    lines += ["", GATEWAY_HEADER, "|---" * 7 + "|"]
    for host, g in report["gateways"].items():
        lines.append(
            f"| {host} | {_mib(g['rss_bytes_after_warm_up'])} | {_mib(g['rss_bytes_end'])} | "
            f"{_mib(g['rss_slope_bytes_per_hour'])} | {g['open_fds_after_warm_up']} / "
            f"{g['open_fds_max']} / {g['open_fds_end']} | {g['cpu_seconds']} | {g['restarts']} |"
        )
    lines.append(f"\nidle connections: {report['idle_connections']}")
    lines += [f"missed goal: {goal}" for goal in report["missed_goals"]] or ["every goal met"]
    return "\n".join(lines)


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / soak_schedule.MIB:.1f}"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kafka_testbed.soaking", description=__doc__)
    parser.add_argument("--minutes", type=float, default=SoakConfig.minutes)
    parser.add_argument("--smoke", action="store_true", help="the 3-minute smoke of make test")
    parser.add_argument("--rate", type=float, default=None, help="records/s per client family")
    parser.add_argument("--idle-connections", type=int, default=None)
    parser.add_argument("--main-brokers", type=int, choices=(1, 3), default=None)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    return parser.parse_args(argv)


def config_from(options: argparse.Namespace) -> SoakConfig:
    config = SMOKE if options.smoke else SoakConfig(minutes=options.minutes)
    chosen = {
        "rate": options.rate,
        "idle_connections": options.idle_connections,
        "main_brokers": options.main_brokers,
    }
    return dataclasses.replace(config, **{k: v for k, v in chosen.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    options = _parse(argv)
    config = config_from(options)
    workdir = Path(tempfile.mkdtemp(prefix="kafka-failover-soak-"))
    print(f"soak of {config.minutes:g} min, work folder {workdir}", flush=True)
    try:
        report = run_soak(config, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the soak started is stopped", file=sys.stderr)
        return 130
    options.report.write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))
    print(f"report written to {options.report}")
    if report["missed_goals"]:
        print(f"goals missed; logs kept in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
