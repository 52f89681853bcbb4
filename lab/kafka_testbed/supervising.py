"""Starting server processes so that none of them outlives the Python process that started it.

A leaked JVM holds ports and half a gigabyte of memory and breaks the next run, so every process
the lab starts goes through :func:`spawn`:

- it runs in its own session and process group, so a stop kills everything it started;
- it is registered, and an ``atexit`` hook plus a SIGTERM handler kill every registered group;
- when spawned from the main thread it also gets ``PR_SET_PDEATHSIG=SIGKILL`` (through
  ``setpriv``), so even a SIGKILLed test runner takes its brokers down with it. (The kernel sends
  that signal when the spawning *thread* exits, hence main thread only; and it is armed a few
  milliseconds after the spawn, once ``setpriv`` runs.)
"""

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kafka_testbed.errors import TestbedError

Process = subprocess.Popen[bytes]
SignalHandler = Callable[[int, types.FrameType | None], object] | int | None

REAP_TIMEOUT_SECONDS = 30.0

_live: dict[int, Process] = {}
_lock = threading.Lock()
_hooks_installed = False


def spawn(
    command: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Process:
    """Start ``command`` in a new process group, stdout and stderr appended to ``log_path``."""
    _install_hooks()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*_death_signal_prefix(), *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    with _lock:
        _live[process.pid] = process
    return process


def run(
    command: Sequence[str], *, stdin: str | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived command to completion, capturing its output, under the same guarantees.

    On timeout the whole process group is killed and :class:`subprocess.TimeoutExpired` is raised
    with whatever output was captured.
    """
    _install_hooks()
    process = subprocess.Popen(
        [*_death_signal_prefix(), *command],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with _lock:
        _live[process.pid] = process
    try:
        stdout, stderr = process.communicate(stdin.encode() if stdin is not None else None, timeout)
    except subprocess.TimeoutExpired as error:
        kill(process)
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(command, timeout, stdout, stderr) from error
    finally:
        kill(process)
    return subprocess.CompletedProcess(
        list(command),
        process.returncode,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
    )


def terminate(process: Process, grace_seconds: float = 10.0) -> int:
    """SIGTERM the process group, SIGKILL it after ``grace_seconds``; return the exit status."""
    _signal_group(process, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_seconds)
    return kill(process)


def kill(process: Process) -> int:
    """SIGKILL the process group and reap the process; return its exit status."""
    _signal_group(process, signal.SIGKILL)
    try:
        status = process.wait(timeout=REAP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise TestbedError(
            f"pid {process.pid} survived SIGKILL for {REAP_TIMEOUT_SECONDS:.0f}s "
            "(stuck in the kernel?); check it with `ps -o stat,wchan -p PID`."
        ) from error
    with _lock:
        _live.pop(process.pid, None)
    return status


def terminate_all(processes: Sequence[Process], grace_seconds: float = 10.0) -> None:
    """Stop several processes in parallel: SIGTERM all, wait for all, SIGKILL stragglers."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        kill(process)


def kill_everything() -> None:
    """SIGKILL every process the lab started and has not stopped yet."""
    with _lock:
        processes = list(_live.values())
    for process in processes:
        kill(process)


def live_pids() -> list[int]:
    """Process ids of everything started and not yet stopped (for diagnostics and tests)."""
    with _lock:
        return list(_live)


def is_running(pid: int) -> bool:
    """True while a process with this pid exists (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _signal_group(process: Process, signum: signal.Signals) -> None:
    # Once reaped, the pid (and so the group id) may belong to someone else: never signal it.
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _death_signal_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"]


def _install_hooks() -> None:
    global _hooks_installed  # noqa: PLW0603 - installed once per interpreter, by design
    with _lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    atexit.register(kill_everything)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm_then(previous))


def _on_sigterm_then(previous: SignalHandler) -> Callable[[int, types.FrameType | None], None]:
    def handler(signum: int, frame: types.FrameType | None) -> None:
        kill_everything()
        if callable(previous):
            previous(signum, frame)
            return
        if previous == signal.SIG_IGN:
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    return handler
