"""Direct Kafka, our gateway and three peer proxies, on one broker, alternated, in one run.

Why it exists: "the fastest Kafka proxy" is a claim about other proxies on the same machine, the
same broker and the same load, not about our figures from another day. One broker is started;
every target sits in front of it at once (``direct`` is the broker itself); each workload runs on
every target in turn, the order rotating each repetition so drift on a shared machine (JIT,
page cache, other processes) is spread over all of them, and medians are reported.

Workloads, per target:

- ``produce``: Kafka's ``ProducerPerformance``, 1 KiB records, ``acks=all``, as fast as it goes,
  into a fresh 3-partition topic;
- ``produce_100b``: the same with 100-byte records (per-record cost, not bandwidth);
- ``consume``: ``ConsumerPerformance`` reading the 1 KiB topic back in a fresh group;
- ``latency``: librdkafka (confluent-kafka) producing 1 KiB records at a fixed 50% of direct's
  median produce rate, ``linger.ms=0``, latencies from librdkafka's own per-message timer;
- ``idle``: N connections that each did one ApiVersions round trip, then sit still.

Figures: MB/s and records/s (the tools' MB is 2^20 bytes), p50/p99 produce latency, proxy CPU
in millicores per MB/s forwarded (= CPU milliseconds per MB, from the process's own CPU time over
the produce runs), proxy peak RSS over the traffic runs (``VmHWM``, read before the idle phase)
and RSS with the idle connections open. A peer that cannot run here stays in the table with the
reason, never silently dropped.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import measuring
import throughput

from kafka_testbed import admin, gateways, launching, peers
from kafka_testbed.errors import TestbedError

TARGETS = ("direct", "gateway", *peers.PEER_NAMES)
PARTITIONS = 3
LATENCY_LOAD = 0.5


@dataclass(frozen=True)
class Settings:
    records: int = 200_000
    records_100b: int = 500_000
    repetitions: int = 3
    latency_seconds: float = 10.0
    idle_connections: int = 5_000
    warmup_records: int = 50_000
    """Produced and consumed once per target before anything counts (JIT, page cache)."""
    targets: tuple[str, ...] = TARGETS


SMOKE = Settings(
    records=5_000,
    records_100b=10_000,
    repetitions=1,
    latency_seconds=1.0,
    idle_connections=200,
    warmup_records=0,
)


@dataclass
class Target:
    name: str
    bootstrap: str
    pid: int | None
    """The proxy process whose CPU and memory are read; None for direct."""


@dataclass(frozen=True)
class Sample:
    target: str
    workload: str
    repetition: int
    mb_per_second: float | None = None
    records_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_seconds: float | None = None
    megabytes: float | None = None


@dataclass
class Outcome:
    settings: Settings
    samples: list[Sample] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    idle_rss_mb: dict[str, tuple[float, float]] = field(default_factory=dict)
    latency_rate: float | None = None


@contextmanager
def running_targets(
    names: Sequence[str], workdir: Path, outcome: Outcome
) -> Iterator[list[Target]]:
    """One broker and every available target in front of it; unavailable ones go to missing."""
    with ExitStack() as stack:
        cluster = launching.start_kafka(
            [1], name="bench-compare", jvm_options=throughput.BROKER_JVM_OPTIONS
        )
        stack.callback(cluster.stop)
        targets: list[Target] = []
        for name in names:
            target = _start(stack, name, cluster.bootstrap, workdir, outcome)
            if target is not None:
                targets.append(target)
        yield targets


def _start(
    stack: ExitStack, name: str, broker: str, workdir: Path, outcome: Outcome
) -> Target | None:
    if name == "direct":
        return Target(name, broker, None)
    if name == "gateway":
        gateway_dir = workdir / "gateway"
        gateway_dir.mkdir(parents=True, exist_ok=True)
        gateway = gateways.start_gateway({"main": broker, "failover": broker}, workdir=gateway_dir)
        stack.callback(gateway.stop)
        return Target(name, gateway.bootstrap, gateway.process.pid)
    try:
        peer = stack.enter_context(peers.start_peer(name, broker, workdir / name))
    except peers.PeerUnavailable as error:
        outcome.missing[name] = str(error)
        _say(f"  {name}: not measured: {error}")
        return None
    return Target(name, peer.bootstrap, peer.pid)


def measure(settings: Settings, workdir: Path) -> Outcome:
    outcome = Outcome(settings)
    with running_targets(settings.targets, workdir, outcome) as targets:
        broker = next(t.bootstrap for t in targets if t.name == "direct")
        for target in list(targets):
            _guarded(targets, target, "preflight", outcome, lambda t=target: _preflight(t, broker))
        if settings.warmup_records:
            for target in list(targets):
                _guarded(
                    targets,
                    target,
                    "warm-up",
                    outcome,
                    lambda t=target: _warm_up(t, broker, settings.warmup_records),
                )
        for repetition in range(settings.repetitions):
            for target in _rotated(targets, repetition):
                _guarded(
                    targets,
                    target,
                    "throughput",
                    outcome,
                    lambda t=target, r=repetition: _throughput_round(
                        t, broker, r, settings, outcome
                    ),
                )
        outcome.latency_rate = LATENCY_LOAD * _median_direct_rate(outcome)
        _latency_phase(targets, broker, settings, outcome)
        for target in list(targets):
            if target.pid is not None:
                outcome.peak_rss_mb[target.name] = measuring.memory_mb(target.pid, "VmHWM")
                _guarded(
                    targets,
                    target,
                    "idle connections",
                    outcome,
                    lambda t=target: _idle_round(t, settings, outcome),
                )
    return outcome


PEER_FAILURES = (RuntimeError, ValueError, OSError, TimeoutError, TestbedError)


def _guarded(
    targets: list[Target], target: Target, stage: str, outcome: Outcome, work: Callable[[], None]
) -> None:
    """Run ``work``; a peer that fails is reported and dropped, direct or gateway failing aborts."""
    if target not in targets:
        return
    try:
        work()
    except PEER_FAILURES as error:
        if target.name in {"direct", "gateway"}:
            raise
        outcome.missing[target.name] = f"failed during {stage}: {_reason(error)}"
        _say(f"  {target.name}: failed during {stage}, dropped from the run: {error}")
        targets.remove(target)
        outcome.samples = [s for s in outcome.samples if s.target != target.name]


PREFLIGHT_RECORDS = 3
PREFLIGHT_TIMEOUT_SECONDS = 60.0


def _preflight(target: Target, broker: str) -> None:
    """A few records through every client the benchmark uses, failing in seconds, not minutes.

    A proxy that cannot carry one of the load generators (a protocol version it cannot decode)
    would otherwise stall a full run until the tools' timeouts.
    """
    topic = _topic(broker, f"preflight-{target.name}")
    quick = ("max.block.ms=3000", "delivery.timeout.ms=20000", "request.timeout.ms=10000")
    sample = throughput.produce(
        target.bootstrap,
        topic,
        PREFLIGHT_RECORDS,
        target.name,
        extra_props=quick,
        timeout=PREFLIGHT_TIMEOUT_SECONDS,
    )
    if sample.records_per_second <= 0:
        raise RuntimeError("ProducerPerformance acknowledged nothing")
    throughput.consume(
        target.bootstrap, topic, PREFLIGHT_RECORDS, target.name, timeout=PREFLIGHT_TIMEOUT_SECONDS
    )
    measuring.fixed_rate_latency(target.bootstrap, topic, rate=100, seconds=0.5, record_size=100)


def _reason(error: BaseException) -> str:
    """The error's first line plus the first line of its output that names an exception."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return repr(error)
    telling = next((line for line in lines[1:] if _TELLING.search(line)), None)
    return lines[0].rstrip(":") + (f" ({telling[:300]})" if telling else "")


_TELLING = re.compile(r"Exception|Error|timed out|Timeout")


def _warm_up(target: Target, broker: str, records: int) -> None:
    _say(f"  warming up {target.name}: {records:,} records produced, consumed, then paced")
    topic = _topic(broker, f"warm-{target.name}")
    throughput.produce(target.bootstrap, topic, records, target.name)
    throughput.consume(target.bootstrap, topic, records, target.name)
    measuring.fixed_rate_latency(target.bootstrap, topic, rate=1000, seconds=2.0, record_size=1024)


def _rotated(targets: Sequence[Target], repetition: int) -> list[Target]:
    shift = repetition % len(targets)
    return [*targets[shift:], *targets[:shift]]


def _throughput_round(
    target: Target, broker: str, repetition: int, settings: Settings, outcome: Outcome
) -> None:
    topic = _topic(broker, f"produce-{target.name}-{repetition}")
    produced = _with_cpu(
        target,
        lambda: throughput.produce(target.bootstrap, topic, settings.records, target.name),
    )
    _record(outcome, target, "produce", repetition, produced, payload_bytes=settings.records * 1024)
    consumed = _with_cpu(
        target,
        lambda: throughput.consume(target.bootstrap, topic, settings.records, target.name),
    )
    _record(outcome, target, "consume", repetition, consumed, payload_bytes=settings.records * 1024)
    small_topic = _topic(broker, f"small-{target.name}-{repetition}")
    small = _with_cpu(
        target,
        lambda: throughput.produce(
            target.bootstrap, small_topic, settings.records_100b, target.name, record_size=100
        ),
    )
    small_bytes = settings.records_100b * 100
    _record(outcome, target, "produce_100b", repetition, small, payload_bytes=small_bytes)


def _topic(broker: str, stem: str) -> str:
    topic = f"compare-{stem}-{time.time_ns()}"
    admin.create_topic(broker, topic, partitions=PARTITIONS)
    return topic


def _with_cpu(
    target: Target, run: Callable[[], throughput.Sample]
) -> tuple[throughput.Sample, float | None]:
    before = measuring.cpu_seconds(target.pid) if target.pid is not None else None
    sample = run()
    if target.pid is None or before is None:
        return sample, None
    return sample, measuring.cpu_seconds(target.pid) - before


def _record(
    outcome: Outcome,
    target: Target,
    workload: str,
    repetition: int,
    result: tuple[throughput.Sample, float | None],
    *,
    payload_bytes: int,
) -> None:
    sample, cpu = result
    recorded = Sample(
        target.name,
        workload,
        repetition,
        mb_per_second=sample.mb_per_second,
        records_per_second=sample.records_per_second,
        cpu_seconds=None if cpu is None else round(cpu, 3),
        megabytes=payload_bytes / 2**20,
    )
    outcome.samples.append(recorded)
    cpu_text = "" if cpu is None else f"  proxy CPU {cpu:5.2f} s"
    _say(
        f"  run {repetition + 1} {workload:<12} {target.name:<13} "
        f"{sample.mb_per_second:7.1f} MB/s {sample.records_per_second:9.0f} records/s{cpu_text}"
    )


def _median_direct_rate(outcome: Outcome) -> float:
    rates = [
        s.records_per_second
        for s in outcome.samples
        if (s.target, s.workload) == ("direct", "produce") and s.records_per_second
    ]
    if not rates:
        raise RuntimeError("direct produce was not measured; the latency load needs it")
    return statistics.median(rates)


LATENCY_SLICE_SECONDS = 1.0


def _latency_phase(
    targets: list[Target], broker: str, settings: Settings, outcome: Outcome
) -> None:
    """Interleave 1 s slices of every target (A, B, C, B, C, A, ...) and pool the latencies.

    p99 on a shared 2-core machine is dominated by what else runs at that moment (the broker's
    GC, the tools' JITs); short interleaved slices spread those moments over every target alike,
    where one long run per target would hand a bad moment to one of them.
    """
    assert outcome.latency_rate is not None
    rate = outcome.latency_rate
    probes: dict[str, measuring.LatencyProbe] = {}
    for target in list(targets):
        topic = _topic(broker, f"latency-{target.name}")

        def open_probe(t: Target = target, topic: str = topic) -> None:
            probe = measuring.LatencyProbe(t.bootstrap, topic, 1024)
            probe.run(rate, LATENCY_SLICE_SECONDS)  # warm slice: new topic, new connections
            probe.reset()
            probes[t.name] = probe

        _guarded(targets, target, "latency", outcome, open_probe)
    slices = max(1, round(settings.latency_seconds * settings.repetitions / LATENCY_SLICE_SECONDS))
    for index in range(slices):
        for target in _rotated(targets, index):
            _guarded(
                targets,
                target,
                "latency",
                outcome,
                lambda t=target: probes[t.name].run(rate, LATENCY_SLICE_SECONDS),
            )
    for target in list(targets):
        _guarded(
            targets,
            target,
            "latency",
            outcome,
            lambda t=target: _latency_result(t, probes, outcome),
        )


def _latency_result(
    target: Target, probes: dict[str, measuring.LatencyProbe], outcome: Outcome
) -> None:
    result = probes[target.name].result()
    if result.errors:
        raise RuntimeError(f"{result.errors} of {result.sent} latency records failed")
    outcome.samples.append(
        Sample(
            target.name,
            "latency",
            0,
            records_per_second=round(result.rate, 1),
            p50_ms=round(result.p50_ms, 3),
            p99_ms=round(result.p99_ms, 3),
        )
    )
    _say(
        f"  latency      {target.name:<13} {result.rate:9.0f} records/s, "
        f"{result.acknowledged:,} records: p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:6.2f} ms"
    )


def _idle_round(target: Target, settings: Settings, outcome: Outcome) -> None:
    assert target.pid is not None
    before, holding = measuring.idle_connections_rss(
        target.bootstrap, target.pid, settings.idle_connections
    )
    outcome.idle_rss_mb[target.name] = (before, holding)
    _say(
        f"  idle         {target.name:<13} RSS {before:7.1f} MiB -> {holding:7.1f} MiB with "
        f"{settings.idle_connections} connections"
    )


def rows(outcome: Outcome) -> list[dict[str, Any]]:
    """One row per target (measured or missing), medians over repetitions."""
    direct = _medians(outcome, "direct")
    result = []
    for name in outcome.settings.targets:
        if name in outcome.missing:
            result.append({"target": name, "missing": outcome.missing[name]})
            continue
        row = _medians(outcome, name)
        row["produce_vs_direct"] = _ratio(row["produce_mb_s"], direct["produce_mb_s"])
        row["consume_vs_direct"] = _ratio(row["consume_mb_s"], direct["consume_mb_s"])
        row["added_p99_ms"] = _difference(row["p99_ms"], direct["p99_ms"])
        row["rss_mb"] = _rounded(outcome.peak_rss_mb.get(name))
        idle = outcome.idle_rss_mb.get(name)
        row["idle_rss_mb"] = _rounded(idle[1]) if idle else None
        row["idle_connections"] = outcome.settings.idle_connections if idle else None
        result.append(row)
    return result


def _medians(outcome: Outcome, name: str) -> dict[str, Any]:
    def median(workload: str, attribute: str) -> float | None:
        values = [
            getattr(s, attribute)
            for s in outcome.samples
            if (s.target, s.workload) == (name, workload) and getattr(s, attribute) is not None
        ]
        return round(statistics.median(values), 3) if values else None

    def cpu_per_mb(workload: str) -> float | None:
        chosen = [
            s
            for s in outcome.samples
            if (s.target, s.workload) == (name, workload) and s.cpu_seconds is not None
        ]
        if not chosen:
            return None
        return round(statistics.median(s.cpu_seconds * 1000 / s.megabytes for s in chosen), 2)  # type: ignore[operator]

    return {
        "target": name,
        "produce_mb_s": median("produce", "mb_per_second"),
        "produce_records_s": median("produce", "records_per_second"),
        "produce_100b_records_s": median("produce_100b", "records_per_second"),
        "consume_mb_s": median("consume", "mb_per_second"),
        "p50_ms": median("latency", "p50_ms"),
        "p99_ms": median("latency", "p99_ms"),
        "cpu_mc_per_mb_s": cpu_per_mb("produce"),
        "consume_cpu_mc_per_mb_s": cpu_per_mb("consume"),
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value is not None and base else None


def _difference(value: float | None, base: float | None) -> float | None:
    return round(value - base, 3) if value is not None and base is not None else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


COLUMNS = (
    ("target", "target", "{}"),
    ("produce_mb_s", "produce 1 KiB MB/s", "{:.1f}"),
    ("produce_vs_direct", "vs direct", "{:.2f}"),
    ("produce_100b_records_s", "produce 100 B rec/s", "{:,.0f}"),
    ("consume_mb_s", "consume MB/s", "{:.1f}"),
    ("consume_vs_direct", "vs direct", "{:.2f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("added_p99_ms", "added p99 ms", "{:+.2f}"),
    ("cpu_mc_per_mb_s", "CPU mc per MB/s", "{:.1f}"),
    ("rss_mb", "peak RSS MiB", "{:.0f}"),
    ("idle_rss_mb", "RSS idle conns MiB", "{:.0f}"),
)


def markdown(table_rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a GitHub markdown table; missing targets say why in one cell."""
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if key == "target" else "---:" for key, _, _ in COLUMNS) + "|"
    lines = [header, rule]
    for row in table_rows:
        if "missing" in row:
            reason = row["missing"].splitlines()[0]
            padding = " |" * (len(COLUMNS) - 2)
            lines.append(f"| {row['target']} | not measured: {reason} |{padding}")
            continue
        cells = [_cell(row.get(key), form) for key, _, form in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any, form: str) -> str:
    if value is None:
        return "-"
    return form.format(value)


def run(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Measure, print the table, return the JSON-ready result."""
    outcome = measure(settings, workdir)
    table_rows = rows(outcome)
    verdicts = goals(table_rows)
    print(_caption(outcome), flush=True)
    print(markdown(table_rows), flush=True)
    print("\ngoals for the gateway:", flush=True)
    for verdict in verdicts:
        print(
            f"  {'met   ' if verdict['met'] else 'MISSED'} {verdict['goal']}: {verdict['measured']}"
        )
    return {
        "settings": asdict(settings),
        "latency_rate_records_s": _rounded(outcome.latency_rate),
        "rows": table_rows,
        "goals": verdicts,
        "samples": [asdict(sample) for sample in outcome.samples],
    }


HIGHER_IS_BETTER = ("produce_mb_s", "produce_100b_records_s", "consume_mb_s")
LOWER_IS_BETTER = ("p99_ms", "cpu_mc_per_mb_s", "rss_mb", "idle_rss_mb")


def goals(table_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals for the gateway, each met or missed, from the table's own figures."""
    by_target = {row["target"]: row for row in table_rows if "missing" not in row}
    gateway = by_target.get("gateway")
    if gateway is None:
        return []
    verdicts = [
        _at_least("produce vs direct >= 0.95", gateway.get("produce_vs_direct"), 0.95),
        _at_least("consume vs direct >= 0.90", gateway.get("consume_vs_direct"), 0.90),
        _at_most("added p99 at 50% load < 1 ms", gateway.get("added_p99_ms"), 1.0, strict=True),
        _at_most("CPU <= 25 millicores per MB/s", gateway.get("cpu_mc_per_mb_s"), 25.0),
    ]
    peers_measured = [row for name, row in by_target.items() if name not in {"direct", "gateway"}]
    for key in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER):
        verdicts.append(_ahead(key, gateway, peers_measured))
    return verdicts


def _at_least(goal: str, value: float | None, bound: float) -> dict[str, Any]:
    return {"goal": goal, "measured": value, "met": value is not None and value >= bound}


def _at_most(
    goal: str, value: float | None, bound: float, *, strict: bool = False
) -> dict[str, Any]:
    met = value is not None and (value < bound if strict else value <= bound)
    return {"goal": goal, "measured": value, "met": met}


def _ahead(key: str, gateway: dict[str, Any], others: Sequence[dict[str, Any]]) -> dict[str, Any]:
    higher = key in HIGHER_IS_BETTER
    ours = gateway.get(key)
    behind = [
        f"{row['target']} {row[key]}"
        for row in others
        if row.get(key) is not None
        and (ours is None or (row[key] > ours if higher else row[key] < ours))
    ]
    measured = f"gateway {ours}" + (f"; better: {', '.join(behind)}" if behind else "")
    goal = f"ahead of every measured peer on {key} ({'higher' if higher else 'lower'} is better)"
    return {"goal": goal, "measured": measured, "met": not behind}


def _caption(outcome: Outcome) -> str:
    settings = outcome.settings
    rate = outcome.latency_rate or 0.0
    return (
        f"\nOne Kafka 4.1.1 broker; medians of {settings.repetitions} rotating runs per target. "
        f"produce: {settings.records:,} x 1 KiB acks=all (ProducerPerformance); 100 B: "
        f"{settings.records_100b:,} records; consume: ConsumerPerformance; latency: "
        f"confluent-kafka at {rate:,.0f} records/s (50% of direct) for "
        f"{settings.latency_seconds:g} s; idle: {settings.idle_connections:,} connections.\n"
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
