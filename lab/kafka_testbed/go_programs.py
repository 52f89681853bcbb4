"""Building the lab's Go programs from pinned modules, once per content, safely in parallel.

Why it exists: the lab runs Go binaries built from the module pinned in ``gomod/franz-go`` (its
go.mod and go.sum): franz-go's own kgo integration tests (:mod:`kafka_testbed.franz_go`) and the
franz-go sequence producer and consumer ``cmd/sequence-producer`` and ``cmd/sequence-consumer``
(:mod:`kafka_testbed.process_producers`).
Go compiles them from the Go module proxy, minutes from empty caches, so each :class:`GoBinary`
is built once and cached under the cache's ``<module folder>`` with a name carrying a hash of what
decides its bytes: its module's go.mod and go.sum, its own sources, the Go release and a recipe
revision. A build runs under a file lock and writes a staging file that is renamed into place,
so parallel test runs build once and an interrupted build leaves nothing half-written. The Go
caches (``~/.cache/kafka-failover/go``) are the Kubernetes build's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka_testbed import fetching, supervising
from kafka_testbed.errors import TestbedError

GOMOD_DIR = Path(__file__).resolve().parent / "gomod"
FRANZ_GO_DIR = GOMOD_DIR / "franz-go"
FRANZ_GO_MODULE = "github.com/twmb/franz-go"
BUILD_TIMEOUT_SECONDS = 900.0
"""kgo's ``go test -c`` from empty Go caches took 2.5 min on 2 cores (70 s once the Kubernetes
build had compiled the standard library into the shared cache); the sequence producer 1 min from
empty caches, about 1 s once kgo is compiled."""
GO_QUERY_TIMEOUT_SECONDS = 300.0
"""``go env`` may first download the toolchain go.mod asks for (GOTOOLCHAIN=auto)."""
LOG_TAIL_LINES = 30


class GoBuildError(TestbedError):
    """A Go program could not be built (Go missing, proxy unreachable, module inconsistent)."""


@dataclass(frozen=True)
class GoBinary:
    """One binary built from a pinned Go module, and what decides its bytes."""

    family: str
    """The start of its file name, shared by every build of it: older builds are removed."""
    description: str
    """What it is, for messages: ``franz-go's kgo tests``."""
    module_dir: Path
    package: str
    """What ``go`` builds, in the module folder: an import path or ``./cmd/...``."""
    sources: tuple[str, ...] = ("go.mod", "go.sum")
    """Files under ``module_dir`` hashed into its name (the module's own Go files it builds)."""
    test: bool = False
    """``go test -c`` (the package's tests) rather than ``go build``."""
    version: str = ""
    """Shown in the file name for people reading the cache folder, e.g. ``v1.22.3``."""
    recipe_revision: str = "1"
    """Bump when the build command changes in a way the hashed files and Go release do not show."""

    @property
    def suffix(self) -> str:
        return ".test" if self.test else ""

    def command(self, go: str, output: Path) -> list[str]:
        """Build exactly from the pinned sources (``-mod=readonly``: go.mod is never rewritten)."""
        verb = ["test", "-c"] if self.test else ["build"]
        return [go, *verb, "-mod=readonly", "-o", str(output), self.package]

    def fingerprint(self, go_release: str) -> str:
        digest = hashlib.sha256(f"{self.recipe_revision}\0{go_release}".encode())
        for name in self.sources:
            digest.update(name.encode() + b"\0" + (self.module_dir / name).read_bytes())
        return digest.hexdigest()[:16]

    def path(self, go_release: str) -> Path:
        """Where the build for ``go_release`` is cached."""
        version = f"{self.version}-" if self.version else ""
        name = f"{self.family}-{version}{self.fingerprint(go_release)}{self.suffix}"
        return cache_dir(self.module_dir) / name


SEQUENCE_PRODUCER_SOURCE = "cmd/sequence-producer/main.go"


def sequence_producer() -> GoBinary:
    """franz-go's sequenced producer, ``gomod/franz-go/cmd/sequence-producer``."""
    return GoBinary(
        family="sequence-producer",
        description="the franz-go sequence producer",
        module_dir=FRANZ_GO_DIR,
        package="./cmd/sequence-producer",
        sources=("go.mod", "go.sum", SEQUENCE_PRODUCER_SOURCE),
        version=required_version(FRANZ_GO_DIR, FRANZ_GO_MODULE),
    )


SEQUENCE_CONSUMER_SOURCE = "cmd/sequence-consumer/main.go"


def sequence_consumer() -> GoBinary:
    """franz-go's consumer group member printing what it reads, ``cmd/sequence-consumer``."""
    return GoBinary(
        family="sequence-consumer",
        description="the franz-go sequence consumer",
        module_dir=FRANZ_GO_DIR,
        package="./cmd/sequence-consumer",
        sources=("go.mod", "go.sum", SEQUENCE_CONSUMER_SOURCE),
        version=required_version(FRANZ_GO_DIR, FRANZ_GO_MODULE),
    )


def cache_dir(module_dir: Path) -> Path:
    """One cache folder per pinned module: ``~/.cache/kafka-failover/franz-go``."""
    return fetching.cache_root() / module_dir.name


def required_version(module_dir: Path, module: str) -> str:
    """The version of ``module`` that ``module_dir``'s go.mod requires, e.g. ``v1.22.3``."""
    text = (module_dir / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
    if found is None:
        raise GoBuildError(f"{module_dir / 'go.mod'} does not require {module}.")
    return found.group(1)


def go_executable(binary: GoBinary) -> str:
    """The ``go`` command: on PATH, else the standard install location."""
    found = shutil.which("go") or shutil.which("/usr/local/go/bin/go")
    if found is None:
        wanted = re.search(r"^go\s+(\d+\.\d+)", (binary.module_dir / "go.mod").read_text(), re.M)
        raise GoBuildError(
            f"Building {binary.description} ({binary.package} {binary.version}".rstrip()
            + ") needs Go and the Go module proxy, but no `go` command was found on PATH or in "
            f"/usr/local/go/bin. Install Go ({wanted.group(1) if wanted else '?'} or newer, as "
            f"gomod/{binary.module_dir.name}/go.mod asks), then rerun "
            "`python -m kafka_testbed.franz_go`."
        )
    return found


def go_environment() -> dict[str, str]:
    """The same Go caches as the Kubernetes build (the cache's ``go``), static binaries."""
    go_cache = fetching.cache_root() / "go"
    flags = os.environ.get("GOFLAGS", "").split()
    flags += [flag for flag in ("-modcacherw", "-trimpath") if flag not in flags]
    return {
        **os.environ,
        "GOMODCACHE": str(go_cache / "mod"),
        "GOCACHE": str(go_cache / "build"),
        "GOFLAGS": " ".join(flags),
        "CGO_ENABLED": "0",
    }


def go_version(go: str, module_dir: Path) -> str:
    """The Go release that builds in ``module_dir`` (after any toolchain switch go.mod asks)."""
    try:
        result = subprocess.run(
            [go, "env", "GOVERSION"], cwd=module_dir, env=go_environment(), capture_output=True,
            text=True, stdin=subprocess.DEVNULL, timeout=GO_QUERY_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise GoBuildError(
            f"`{go} env GOVERSION` did not answer within {error.timeout}s"
        ) from error
    if result.returncode != 0:
        raise GoBuildError(f"`{go} env GOVERSION` failed:\n{result.stderr.strip()}")
    return result.stdout.strip()


def build(binary: GoBinary, *, log: bool = True) -> Path:
    """Make sure ``binary`` is built and return its path; a no-op when cached."""
    go = go_executable(binary)
    target = binary.path(go_version(go, binary.module_dir))
    if os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / ".build.lock"):
        if not os.access(target, os.X_OK):
            _build_into(binary, go, target, log=log)
    return target


def start(binary: GoBinary, arguments: Sequence[str], log_path: Path) -> supervising.Process:
    """Run ``binary`` (built first when missing); its stdout and stderr go to ``log_path``."""
    return supervising.spawn([str(build(binary)), *arguments], log_path)


def _build_into(binary: GoBinary, go: str, target: Path, *, log: bool) -> None:
    build_log = target.parent / "build.log"
    handle, staging_name = tempfile.mkstemp(prefix=f".{binary.family}.", dir=target.parent)
    os.close(handle)
    staging = Path(staging_name)
    command = binary.command(go, staging)
    _say(log, f"kafka_testbed: building {binary.description} ...")
    started = time.monotonic()
    try:
        with build_log.open("a") as output:
            output.write(f"\n$ (cd {binary.module_dir}) {' '.join(command)}\n")
        process = supervising.spawn(command, build_log, env=go_environment(), cwd=binary.module_dir)
        status = _wait(process, BUILD_TIMEOUT_SECONDS)
        if status != 0:
            raise GoBuildError(_explain_build_failure(binary, status, build_log))
        staging.chmod(0o755)
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)
    for stale in target.parent.glob(f"{binary.family}-*{binary.suffix}"):
        if stale != target:
            stale.unlink(missing_ok=True)
    _say(log, f"kafka_testbed: built {target.name} in {time.monotonic() - started:.0f}s")


def _wait(process: supervising.Process, timeout: float) -> int | None:
    """The exit status, or None when the build had to be killed after ``timeout``."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        supervising.kill(process)


def _explain_build_failure(binary: GoBinary, status: int | None, build_log: Path) -> str:
    tail = "\n".join(build_log.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:])
    verb = "go test -c" if binary.test else "go build"
    if status is None:
        problem = f"`{verb}` did not finish within {BUILD_TIMEOUT_SECONDS:.0f}s"
    elif re.search(r"proxy\.golang\.org|dial tcp|no such host|i/o timeout|404 Not Found", tail):
        problem = "Go could not download a module: is the Go module proxy reachable (GOPROXY)?"
    elif re.search(r"missing go\.sum entry|updates to go\.mod needed", tail):
        problem = (
            f"{binary.module_dir} is inconsistent: run `go mod tidy` there and commit the result"
        )
    else:
        problem = f"`{verb} {binary.package}` failed (exit status {status})"
    return f"{problem}; last lines of {build_log}:\n{tail}"


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
