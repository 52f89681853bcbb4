"""Processes the lab starts die with their group, on stop, on timeout, and at exit."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafka_testbed import supervising


def group_members(group_id: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group_id and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def wait_until_gone(group_id: int) -> list[int]:
    """Members of the group left after SIGKILL had a moment to be delivered (normally none)."""
    deadline = time.monotonic() + 5
    while group_members(group_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    return group_members(group_id)


def wait_until_exec(pid: int, program: str) -> None:
    """Wait until the launcher (setpriv) has set up the child and exec'd the real program."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == program.encode():
            return
        time.sleep(0.01)
    raise AssertionError(f"{pid} never became {program}")


def test_a_spawned_process_runs_in_its_own_process_group(tmp_path: Path) -> None:
    process = supervising.spawn(["sleep", "30"], tmp_path / "log")
    try:
        assert os.getpgid(process.pid) == process.pid
        assert os.getpgid(process.pid) != os.getpgid(0)
        assert process.pid in supervising.live_pids()
    finally:
        supervising.kill(process)


def test_killing_a_process_kills_its_whole_group_and_forgets_it(tmp_path: Path) -> None:
    process = supervising.spawn(["sh", "-c", "sleep 30 & sleep 30"], tmp_path / "log")
    time.sleep(0.2)
    assert len(group_members(process.pid)) >= 2

    status = supervising.kill(process)

    assert status == -9
    assert wait_until_gone(process.pid) == []
    assert process.pid not in supervising.live_pids()
    assert not supervising.is_running(process.pid)


def test_terminating_gives_the_process_a_chance_to_exit_cleanly(tmp_path: Path) -> None:
    script = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(3)); "
    process = supervising.spawn(
        [sys.executable, "-c", script + "print('up', flush=True); time.sleep(30)"], tmp_path / "log"
    )
    deadline = time.monotonic() + 10
    while "up" not in (tmp_path / "log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)

    assert supervising.terminate(process, grace_seconds=5) == 3


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    process = supervising.spawn(
        [sys.executable, "-c", script + "print('up', flush=True); time.sleep(30)"], tmp_path / "log"
    )
    deadline = time.monotonic() + 10
    while "up" not in (tmp_path / "log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()

    assert supervising.terminate(process, grace_seconds=0.3) == -9
    assert time.monotonic() - started < 5


def test_output_of_a_spawned_process_is_appended_to_its_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("earlier\n")
    process = supervising.spawn(["sh", "-c", "echo out; echo err >&2"], log)
    process.wait(timeout=10)
    supervising.kill(process)

    assert log.read_text().splitlines() == ["earlier", "out", "err"]


def test_a_finished_command_returns_its_output() -> None:
    result = supervising.run(["sh", "-c", "cat; echo err >&2"], stdin="hello\n", timeout=10)

    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "err\n")


def test_a_command_running_past_its_timeout_is_killed_with_its_group() -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as timeout:
        supervising.run(["sh", "-c", "echo $$; sleep 30 & sleep 30"], timeout=0.5)

    assert time.monotonic() - started < 5
    group = int(timeout.value.stdout or b"0")
    assert group > 0
    assert wait_until_gone(group) == []


def test_everything_still_running_at_exit_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time; sys.path[:0] = sys.argv[1:2]\n"
        "from kafka_testbed import supervising\n"
        "p = supervising.spawn(['sleep', '30'], __import__('pathlib').Path(sys.argv[2]))\n"
        "print(p.pid, flush=True)\n"
    )
    package_root = str(Path(supervising.__file__).parents[1])
    result = subprocess.run(
        [sys.executable, "-c", script, package_root, str(tmp_path / "log")],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip

    assert not supervising.is_running(int(result.stdout))


def test_a_sigterm_to_the_parent_kills_what_it_started(tmp_path: Path) -> None:
    script = (
        "import sys, time; sys.path[:0] = sys.argv[1:2]\n"
        "from kafka_testbed import supervising\n"
        "p = supervising.spawn(['sleep', '30'], __import__('pathlib').Path(sys.argv[2]))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    package_root = str(Path(supervising.__file__).parents[1])
    parent = subprocess.Popen(
        [sys.executable, "-c", script, package_root, str(tmp_path / "log")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert supervising.is_running(child)

    parent.terminate()

    assert parent.wait(timeout=10) == -15
    assert not supervising.is_running(child)


def test_a_sigkilled_parent_takes_its_children_with_it(tmp_path: Path) -> None:
    script = (
        "import sys, time; sys.path[:0] = sys.argv[1:2]\n"
        "from kafka_testbed import supervising\n"
        "p = supervising.spawn(['sleep', '30'], __import__('pathlib').Path(sys.argv[2]))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    package_root = str(Path(supervising.__file__).parents[1])
    parent = subprocess.Popen(
        [sys.executable, "-c", script, package_root, str(tmp_path / "log")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    wait_until_exec(child, "sleep")

    parent.kill()
    parent.wait(timeout=10)

    deadline = time.monotonic() + 5
    while supervising.is_running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not supervising.is_running(child)
