"""``make bench`` / ``make bench-smoke``: the proxy comparison and switch latency, saved as JSON.

Why it exists: one command that answers "does the gateway slow Kafka down, is it faster than the
other proxies, and how fast does a switch move producers?" from a fresh clone, with numbers that
can be compared across commits. Each run writes ``bench/results/<UTC time>-<mode>.json``
(git-ignored) and, for a full run, ``bench/results/latest.json`` (kept in git, so a change in the
figures shows up in review; smoke runs write ``latest-smoke.json``). The document is
``{"machine": {...}, "rows": [{"target": ..., "produce_mb_s": ..., ...}, ...], ...}``.

    python bench/run.py                      # full: every target, 3 rotating runs, 20 switches
    python bench/run.py --smoke              # seconds per part: is everything wired?
    python bench/run.py --targets direct,gateway --repetitions 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import comparison
import switch_latency

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    settings = _settings(options)
    started, machine = time.time(), _machine()
    mode = "smoke" if options.smoke else "full"
    if options.targets or options.repetitions:
        mode = f"{mode}-partial"
    print("== direct, gateway and peer proxies on one broker ==", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as workdir:
        compared = comparison.run(settings, Path(workdir))
    document: dict[str, Any] = {
        "mode": mode,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine,
        **compared,
    }
    if not options.no_switch:
        print("\n== switch latency ==", flush=True)
        document["switch_latency"] = switch_latency.run(smoke=options.smoke)
    document["seconds"] = round(time.time() - started, 1)
    path = _save(document, started)
    print(f"\nresults: {path} and {RESULTS / _latest(mode)}")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Proxy comparison and switch-latency benchmarks")
    parser.add_argument("--smoke", action="store_true", help="one very short run of each")
    parser.add_argument(
        "--targets",
        help=f"comma-separated subset of {','.join(comparison.TARGETS)} (direct is always run)",
    )
    parser.add_argument("--repetitions", type=int, help="rotating runs per target")
    parser.add_argument("--no-switch", action="store_true", help="skip the switch-latency part")
    options = parser.parse_args(argv)
    if options.targets:
        chosen = [name.strip() for name in options.targets.split(",") if name.strip()]
        unknown = sorted(set(chosen) - set(comparison.TARGETS))
        if unknown:
            parser.error(
                f"unknown target(s) {', '.join(unknown)}; valid: {', '.join(comparison.TARGETS)}"
            )
        options.targets = tuple(name for name in comparison.TARGETS if name in {"direct", *chosen})
    if options.repetitions is not None and options.repetitions < 1:
        parser.error(f"--repetitions must be at least 1, got {options.repetitions}")
    return options


def _settings(options: argparse.Namespace) -> comparison.Settings:
    settings = comparison.SMOKE if options.smoke else comparison.Settings()
    if options.targets:
        settings = dataclasses.replace(settings, targets=options.targets)
    if options.repetitions:
        settings = dataclasses.replace(settings, repetitions=options.repetitions)
    return settings


def _machine() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cpus": _cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "commit": _git_commit(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


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
