"""``make bench`` / ``make bench-smoke``: throughput and switch latency in one go, saved as JSON.

Why it exists: one command that answers "does the gateway slow Kafka down, and how fast does a
switch move producers?" from a fresh clone, with numbers that can be compared across commits.
Each run writes ``bench/results/<UTC time>-<mode>.json`` (git-ignored) and, for a full run,
``bench/results/latest.json`` (kept in git, so a change in the figures shows up in review; smoke
runs write ``latest-smoke.json``).

    python bench/run.py            # full: 5 alternating throughput runs per path, 20 switches
    python bench/run.py --smoke    # seconds per part: is everything wired?
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import switch_latency
import throughput

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput and switch-latency benchmarks")
    parser.add_argument("--smoke", action="store_true", help="one very short run of each")
    options = parser.parse_args(argv)
    started, machine = time.time(), _machine()
    mode = "smoke" if options.smoke else "full"
    print("== throughput (Kafka's ProducerPerformance / ConsumerPerformance) ==", flush=True)
    throughput_result = throughput.run(smoke=options.smoke)
    print("\n== switch latency ==", flush=True)
    latency_result = switch_latency.run(smoke=options.smoke)
    document: dict[str, Any] = {
        "mode": mode,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine,
        "throughput": throughput_result,
        "switch_latency": latency_result,
    }
    path = _save(document, started)
    print(f"\nresults: {path} and {RESULTS / _latest(mode)}")
    return 0


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": _cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "commit": _git_commit(),
    }


def _cpu_count() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            cwd=RESULTS.parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def _save(document: dict[str, Any], started: float) -> Path:
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(document, indent=1) + "\n"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    path = RESULTS / f"{stamp}-{document['mode']}.json"
    path.write_text(text)
    (RESULTS / _latest(document["mode"])).write_text(text)
    return path


def _latest(mode: str) -> str:
    """Smoke runs must not overwrite the full figures kept in git."""
    return "latest.json" if mode == "full" else f"latest-{mode}.json"


if __name__ == "__main__":
    sys.exit(main())
