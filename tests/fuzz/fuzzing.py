"""Running a coverage-guided fuzz target with atheris (libFuzzer for Python).

Why a module of its own: each target (``fuzz_*.py`` here) is a script, run in a process of its
own because libFuzzer ends the process when it is done. This module gives every target the same
command line (libFuzzer's flags, e.g. ``-max_total_time=60``), and a corpus directory seeded with
valid inputs, so the fuzzer starts from real Kafka frames instead of rediscovering them.
``tests/fuzz/test_fuzz_targets.py`` runs each target briefly; ``make fuzz`` runs them for long.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris


def run(target: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    """Fuzz ``target`` with libFuzzer's flags from the command line; a directory given there is
    the corpus (kept between runs), else a temporary one. Seeds are written into it first."""
    args = list(sys.argv)
    corpus = next((arg for arg in args[1:] if not arg.startswith("-")), None)
    if corpus is None:
        corpus = tempfile.mkdtemp(prefix="fuzz-corpus-")
        args.append(corpus)
    directory = Path(corpus)
    directory.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(seeds):
        (directory / f"seed-{number}").write_bytes(seed)
    atheris.Setup(args, target)
    atheris.Fuzz()
