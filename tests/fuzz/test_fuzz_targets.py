"""A short coverage-guided run of every fuzz target (``make fuzz`` runs them for long).

Each target runs in a process of its own (libFuzzer ends the process it runs in) for a few
seconds from its seed corpus; the test fails when the target raised anything but the errors it
documents, and shows the input libFuzzer saved.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TARGETS = sorted(path.name for path in HERE.glob("fuzz_*.py"))
SECONDS = 10


def test_there_are_fuzz_targets_for_the_splitter_and_the_rewriter() -> None:
    assert TARGETS == ["fuzz_address_rewriting.py", "fuzz_frame_splitter.py"]


@pytest.mark.parametrize("target", TARGETS)
def test_a_short_fuzzing_run_finds_no_uncaught_error(target: str, tmp_path: Path) -> None:
    command = [
        sys.executable, str(HERE / target), f"-max_total_time={SECONDS}", "-rss_limit_mb=1024",
        "-timeout=10", f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus"),
    ]  # fmt: skip
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=SECONDS + 60)
    saved = [path.name for path in tmp_path.glob("crash-*")]
    assert run.returncode == 0, f"{target} failed, inputs saved {saved}:\n{run.stderr[-4000:]}"
    assert "Done" in run.stderr
