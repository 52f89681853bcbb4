"""The test suite's own layout: the tiers are not packages, so pytest imports each test module
by its basename, and two tiers holding one basename break the collection of the whole suite
(a run of one tier or one file does not show it)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename_across_tiers() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    shared = sorted(name for name, count in names.items() if count > 1)
    assert not shared, f"rename one of each: {shared}"
