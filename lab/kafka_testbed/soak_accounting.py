"""Turning what a soak recorded into its report: loss per client family, memory per gateway.

Why it exists: the soak's claims ("nothing lost", "memory flat") must be recomputable from the
raw material, not from the runner's bookkeeping. This takes the producers' logs (sent,
acknowledged, failed, with times), the sequence numbers read back from each cluster, the
replication gaps measured at immediate switches, and the gateways' /proc samples, and computes
every figure of ``soak-report.json``. No processes, no sockets: tested with plain values.

- ``lost``: acknowledged and on neither cluster; ``lost_in_gaps`` those inside an immediate
  switch's replication gap (acknowledged by main, not yet copied to failover when the switch was
  sent), ``lost_outside_gaps`` the rest (the goal: 0).
- ``duplicated``: sequence numbers with more than one copy on one cluster (a retry that landed
  twice, e.g. once copied by MirrorMaker and once sent again after a switch).
- Memory: each gateway's RSS and open descriptors per process lifetime (a killed pod starts a
  new one); the slope per hour is that of the longest lifetime after its warm-up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka_testbed import soak_schedule


@dataclass(frozen=True)
class FamilyRecords:
    """What one client family's producer and consumer did, and what each cluster holds."""

    sent_at: Mapping[int, float]
    acked_at: Mapping[int, float]
    errors: Mapping[int, str]
    copies: Mapping[str, Sequence[int]]
    """Cluster name -> every sequence number read from it (a duplicate appears twice)."""
    gap: frozenset[int]
    consumed: Sequence[int]
    fatal_errors: Sequence[str]


@dataclass(frozen=True)
class Sample:
    """One /proc reading of a gateway process; ``at`` in seconds from the start of the load."""

    at: float
    pid: int
    rss_bytes: int
    open_fds: int
    cpu_seconds: float


def family_report(records: FamilyRecords) -> dict[str, Any]:
    """The per-family counts of the report."""
    acked = set(records.acked_at)
    kept = set().union(*(set(copies) for copies in records.copies.values()))
    lost = acked - kept
    waits = [
        at - records.sent_at[seq] for seq, at in records.acked_at.items() if seq in records.sent_at
    ]
    return {
        "sent": len(records.sent_at),
        "acknowledged": len(acked),
        "failed": len(set(records.errors) - acked),
        "lost": len(lost),
        "lost_in_gaps": len(lost & records.gap),
        "lost_outside_gaps": len(lost - records.gap),
        "replication_gap_records": len(records.gap),
        "duplicated": duplicated(records.copies.values()),
        "on_cluster": {name: len(set(copies)) for name, copies in records.copies.items()},
        "consumed": len(records.consumed),
        "consumed_distinct": len(set(records.consumed)),
        "fatal_errors": list(records.fatal_errors),
        "longest_ack_wait_ms": round(max(waits, default=0.0) * 1000, 1),
    }


def duplicated(copies: Iterable[Sequence[int]]) -> int:
    """Sequence numbers held more than once by some cluster."""
    twice: set[int] = set()
    for cluster_copies in copies:
        twice |= {seq for seq, count in Counter(cluster_copies).items() if count > 1}
    return len(twice)


def lifetimes(samples: Sequence[Sample]) -> list[list[Sample]]:
    """Samples split by process id, in order: one list per process lifetime."""
    runs: list[list[Sample]] = []
    for sample in samples:
        if not runs or runs[-1][0].pid != sample.pid:
            runs.append([])
        runs[-1].append(sample)
    return runs


def gateway_report(samples: Sequence[Sample], warm_up: float) -> dict[str, Any]:
    """RSS, descriptors and CPU of one gateway pod over the run."""
    runs = lifetimes(samples)
    steady = [
        [s for s in run if s.at - run[0].at >= warm_up] for run in runs
    ]  # each lifetime's own warm-up: a restarted process grows again at first
    longest = max(steady, key=lambda run: run[-1].at - run[0].at if run else -1.0, default=[])
    rss = soak_schedule.slope_per_hour([(s.at, float(s.rss_bytes)) for s in longest])
    fds = soak_schedule.slope_per_hour([(s.at, float(s.open_fds)) for s in longest])
    return {
        "restarts": max(0, len(runs) - 1),
        "samples": len(samples),
        "rss_bytes_after_warm_up": longest[0].rss_bytes if longest else None,
        "rss_bytes_end": samples[-1].rss_bytes if samples else None,
        "rss_bytes_max": max((s.rss_bytes for s in samples), default=None),
        "rss_slope_bytes_per_hour": None if rss is None else round(rss),
        "rss_slope_window_seconds": round(longest[-1].at - longest[0].at) if longest else 0,
        "open_fds_after_warm_up": longest[0].open_fds if longest else None,
        "open_fds_end": samples[-1].open_fds if samples else None,
        "open_fds_max": max((s.open_fds for s in samples), default=None),
        "open_fds_slope_per_hour": None if fds is None else round(fds, 1),
        "cpu_seconds": round(sum(run[-1].cpu_seconds for run in runs), 1),
        "series": [[round(s.at), s.pid, s.rss_bytes, s.open_fds] for s in samples],
    }


def replication_gap(acked_before: Iterable[int], on_failover: Iterable[int]) -> frozenset[int]:
    """Acknowledged before an immediate switch and not on failover when it was sent."""
    return frozenset(set(acked_before) - set(on_failover))
