"""What a soak does when, and how its figures are judged: pure functions, no processes.

Why it exists: the soak (:mod:`kafka_testbed.soaking`) is only comparable between a 3-minute smoke
and an hour if the same faults come in the same order, spread over whatever length is asked, and
if "memory is flat" and "nothing was lost" are decided by one rule. The fault plan, the memory
slope and the goals live here so they are tested without starting a cluster.

The plan repeats one cycle of faults (:data:`CYCLE`) evenly over the run after a warm-up; each
cycle leaves the clients on main, where a planned switch (main -> failover, the direction
MirrorMaker 2 copies) can run again.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
RSS_SLOPE_GOAL_BYTES_PER_HOUR = 1 * MIB
SLOPE_GOAL_MIN_MINUTES = 30.0
"""The RSS slope goal is judged only for runs at least this long: minutes say nothing of hours."""
MIN_SLOPE_SAMPLES = 3


class Fault(enum.Enum):
    """One scheduled event of the soak."""

    PLANNED_TO_FAILOVER = "planned switch to failover"
    IMMEDIATE_TO_FAILOVER = "immediate switch to failover"
    IMMEDIATE_TO_MAIN = "immediate switch to main"
    BROKER_KILL = "main broker killed and restarted"
    GATEWAY_KILL = "gateway process killed and restarted"
    MIRROR_PAUSE = "MirrorMaker paused and resumed"


CYCLE: tuple[Fault, ...] = (
    Fault.PLANNED_TO_FAILOVER,
    Fault.GATEWAY_KILL,  # while on failover: the restarted pod must come back on failover
    Fault.IMMEDIATE_TO_MAIN,
    Fault.BROKER_KILL,  # while on main: its clients live through a broker going away
    Fault.MIRROR_PAUSE,
    Fault.IMMEDIATE_TO_FAILOVER,  # right after the pause: replication may still be behind
    Fault.IMMEDIATE_TO_MAIN,
)

SWITCH_KINDS = {
    Fault.PLANNED_TO_FAILOVER: "planned",
    Fault.IMMEDIATE_TO_FAILOVER: "immediate",
    Fault.IMMEDIATE_TO_MAIN: "immediate",
}


@dataclass(frozen=True)
class Planned:
    """A fault and when it starts, in seconds from the start of the load."""

    at: float
    fault: Fault


def plan(seconds: float, *, warm_up: float, tail: float) -> list[Planned]:
    """Whole cycles of :data:`CYCLE` spread evenly over ``[warm_up, seconds - tail)``.

    At least one cycle, however short the run: a smoke must see every fault once. Longer runs
    get one cycle per 14 minutes (a fault every 2 minutes), so an hour holds four.
    """
    if seconds <= 0 or warm_up < 0 or tail < 0:
        raise ValueError(
            f"a soak needs seconds > 0 and warm_up, tail >= 0; got {seconds}, {warm_up}, {tail}"
        )
    window = max(0.0, seconds - warm_up - tail)
    cycles = max(1, int(window // (120.0 * len(CYCLE))))
    faults = [fault for _ in range(cycles) for fault in CYCLE]
    step = window / len(faults)
    return [Planned(warm_up + index * step, fault) for index, fault in enumerate(faults)]


def slope_per_hour(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, value)`` samples, per hour; None below 3 samples."""
    if len(samples) < MIN_SLOPE_SAMPLES:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return None
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return covariance / spread * 3600.0


def after_warm_up(
    samples: Sequence[tuple[float, float]], warm_up: float
) -> list[tuple[float, float]]:
    """The samples taken at least ``warm_up`` seconds after the first one."""
    if not samples:
        return []
    start = samples[0][0]
    return [(t, v) for t, v in samples if t - start >= warm_up]


def missed_goals(report: dict[str, Any]) -> list[str]:
    """Each goal of issue 19 the report misses, as a sentence; empty when all are met."""
    missed = []
    families = report["families"]
    lost = sum(family["lost_outside_gaps"] for family in families.values())
    if lost:
        missed.append(f"{lost} acknowledged records lost outside replication gaps (goal 0)")
    fatal = sum(len(family["fatal_errors"]) for family in families.values())
    if fatal:
        missed.append(f"{fatal} fatal client errors (goal 0)")
    idle = sorted(name for name, family in families.items() if family.get("consumed") == 0)
    if idle:
        missed.append(f"consumer groups that consumed nothing: {', '.join(idle)} (goal: every one)")
    if report["fault_errors"]:
        missed.append(f"{len(report['fault_errors'])} faults did not complete (goal 0)")
    if report["minutes"] >= SLOPE_GOAL_MIN_MINUTES:
        for pod, figures in report["gateways"].items():
            slope = figures["rss_slope_bytes_per_hour"]
            if slope is None or slope >= RSS_SLOPE_GOAL_BYTES_PER_HOUR:
                missed.append(f"gateway {pod}: RSS slope {slope} B/h (goal < 1 MiB/h)")
    return missed
