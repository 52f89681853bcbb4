"""Building etcd, kube-apiserver and kube-controller-manager from the Go module proxy, once.

There is no Docker here and no download site for release binaries, but the Go module proxy serves
the Kubernetes and etcd sources, so the tests compile the real control plane. ``k8s.io/kubernetes``
cannot be required like an ordinary module: its go.mod replaces the staging modules
(``k8s.io/api``, ``k8s.io/apiserver``, ...) with ``./staging`` folders that its module zip does not
contain. The pinned module in ``gomod/kubernetes`` therefore replaces each staging module with its
published ``v0.Y.Z`` release; etcd is built from its own pinned module in ``gomod/etcd``. Both
go.mod files and their go.sum are committed, so every machine compiles exactly the same sources.

Binaries go to ``~/.cache/kafka-failover/k8s/<version>/bin``; a marker written after a
complete build makes the next call a no-op, and a build goes to a staging folder first, so an
interrupted build never leaves a half-filled folder behind. Go's module and build caches live in
``~/.cache/kafka-failover/go`` so repeated builds on one machine are fast.

``python -m kube_testbed.building`` builds (``make fetch`` runs it);
``python -m kube_testbed.building --pin v1.37.2 v3.7.3`` rewrites the pinned modules for an upgrade.
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
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

from kafka_testbed import fetching
from kube_testbed.errors import BuildError

PACKAGE_DIR = Path(__file__).resolve().parent
GOMOD_DIR = PACKAGE_DIR / "gomod"
KUBERNETES_MODULE_DIR = GOMOD_DIR / "kubernetes"
ETCD_MODULE_DIR = GOMOD_DIR / "etcd"
KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
MARKER_NAME = ".complete.json"
CACHE_ENV_VAR = "KUBE_TESTBED_CACHE"
RECIPE_REVISION = "1"
"""Bump when the build command changes in a way the go.mod/go.sum files do not show."""

BUILD_TIMEOUT_SECONDS = 3600.0
"""One ``go build`` of kube-apiserver from cold caches takes well under this on 2 cores."""
GO_COMMAND_TIMEOUT_SECONDS = 900.0
"""``go mod download`` / ``go mod tidy`` / ``go env``: network-bound, not compile-bound."""
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Binary:
    """One executable of the control plane and the pinned module that builds it."""

    name: str
    package: str
    module_dir: Path


BINARIES: tuple[Binary, ...] = (
    Binary("etcd", ETCD_MODULE, ETCD_MODULE_DIR),
    Binary("kube-apiserver", f"{KUBERNETES_MODULE}/cmd/kube-apiserver", KUBERNETES_MODULE_DIR),
    Binary(
        "kube-controller-manager",
        f"{KUBERNETES_MODULE}/cmd/kube-controller-manager",
        KUBERNETES_MODULE_DIR,
    ),
)


def cache_root() -> Path:
    """The folder holding every build: ``$KUBE_TESTBED_CACHE``, else the lab's cache
    (:func:`kafka_testbed.fetching.cache_root`, ``~/.cache/kafka-failover``)."""
    override = os.environ.get(CACHE_ENV_VAR)
    return Path(override) if override else fetching.cache_root()


def kubernetes_version() -> str:
    """The pinned Kubernetes release, e.g. ``v1.37.2`` (read from the committed go.mod)."""
    return _required_version(KUBERNETES_MODULE_DIR / "go.mod", KUBERNETES_MODULE)


def etcd_version() -> str:
    """The pinned etcd release, e.g. ``v3.7.3`` (read from the committed go.mod)."""
    return _required_version(ETCD_MODULE_DIR / "go.mod", ETCD_MODULE)


def bin_dir(version: str | None = None) -> Path:
    """Where the binaries of one Kubernetes release live (whether built yet or not)."""
    return cache_root() / "k8s" / (version or kubernetes_version()) / "bin"


def binary_path(name: str) -> Path:
    """The path of one built binary (``etcd``, ``kube-apiserver``, ...); see :func:`build`."""
    return bin_dir() / name


def is_complete(target: Path | None = None) -> bool:
    """True when ``target`` holds a finished build of exactly the pinned modules."""
    target = target or bin_dir()
    try:
        marker = json.loads((target / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("fingerprint") != fingerprint():
        return False
    return all(os.access(target / binary.name, os.X_OK) for binary in BINARIES)


def build(*, log: bool = True) -> Path:
    """Make sure the pinned binaries are built and return their folder; a no-op when complete."""
    target = bin_dir()
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / ".build.lock"):
        if not is_complete(target):
            _build_into(target, log=log)
    return target


def fingerprint() -> str:
    """A hash of what decides the binaries: both pinned modules and the build recipe."""
    digest = hashlib.sha256(RECIPE_REVISION.encode())
    for module_dir in (KUBERNETES_MODULE_DIR, ETCD_MODULE_DIR):
        for name in ("go.mod", "go.sum"):
            digest.update(name.encode())
            digest.update((module_dir / name).read_bytes())
    return digest.hexdigest()


def go_executable() -> str:
    """The ``go`` command: on PATH, else the standard install location."""
    found = shutil.which("go") or shutil.which("/usr/local/go/bin/go")
    if found is None:
        raise BuildError(
            "The Kubernetes control plane is compiled from the Go module proxy, but no `go` "
            "command was found on PATH or in /usr/local/go/bin. Install Go "
            f"{_go_directive(KUBERNETES_MODULE_DIR / 'go.mod')} or newer, then rerun "
            "`python -m kube_testbed.building`."
        )
    return found


def go_environment() -> dict[str, str]:
    """The environment for every go command: caches in the cache's ``go``, static, removable."""
    go_cache = cache_root() / "go"
    flags = os.environ.get("GOFLAGS", "").split()
    flags += [flag for flag in ("-modcacherw", "-trimpath") if flag not in flags]
    return {
        **os.environ,
        "GOMODCACHE": str(go_cache / "mod"),
        "GOCACHE": str(go_cache / "build"),
        "GOFLAGS": " ".join(flags),
        "CGO_ENABLED": "0",
    }


def ldflags(version: str) -> str:
    """Linker flags: strip symbols, and stamp the release as Kubernetes' own build scripts do."""
    major, minor = version.removeprefix("v").split(".")[:2]
    stamps = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return " ".join(
        ["-s", "-w"]
        + [
            f"-X {package}.{key}={value}"
            for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            for key, value in stamps.items()
        ]
    )


def build_command(go: str, binary: Binary, output: Path, version: str) -> list[str]:
    """The ``go build`` invocation for one binary (run in its pinned module's folder)."""
    return [
        go,
        "build",
        "-mod=readonly",
        "-ldflags",
        ldflags(version),
        "-o",
        str(output),
        binary.package,
    ]


def _build_into(target: Path, *, log: bool) -> None:
    go = go_executable()
    version = kubernetes_version()
    staging = Path(tempfile.mkdtemp(prefix=".bin.", dir=target.parent))
    build_log = target.parent / "build.log"
    started = time.monotonic()
    try:
        for binary in BINARIES:
            _say(log, f"kube_testbed: building {binary.name} ({binary.package}) ...")
            began = time.monotonic()
            _run_go(build_command(go, binary, staging / binary.name, version), binary, build_log)
            _say(log, f"kube_testbed: built {binary.name} in {time.monotonic() - began:.0f}s")
        marker = {
            "fingerprint": fingerprint(),
            "kubernetes": version,
            "etcd": etcd_version(),
            "go": _go_version(go),
            "seconds": round(time.monotonic() - started),
        }
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=1))
        staging.chmod(0o755)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_go(command: Sequence[str], binary: Binary, build_log: Path) -> None:
    with build_log.open("a") as output:
        output.write(f"\n$ (cd {binary.module_dir}) {' '.join(command)}\n")
        output.flush()
        try:
            result = subprocess.run(
                command,
                cwd=binary.module_dir,
                env=go_environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise BuildError(
                f"`go build` of {binary.name} did not finish within {BUILD_TIMEOUT_SECONDS:.0f}s; "
                f"see {build_log}. Rerun `python -m kube_testbed.building`: finished packages "
                "stay in Go's build cache."
            ) from error
    if result.returncode != 0:
        raise BuildError(explain_build_failure(binary, build_log))


def explain_build_failure(binary: Binary, build_log: Path) -> str:
    """Turn a failed ``go build``'s log into a message saying what failed and what to do."""
    lines = build_log.read_text(errors="replace").strip().splitlines()
    tail = "\n".join(lines[-LOG_TAIL_LINES:])
    if re.search(r"missing go\.sum entry|updates to go\.mod needed", tail):
        advice = (
            f"The pinned module {binary.module_dir} is inconsistent: regenerate it with "
            "`python -m kube_testbed.building --pin KUBERNETES_VERSION ETCD_VERSION`."
        )
    elif re.search(r"proxy\.golang\.org|dial tcp|no such host|i/o timeout|404 Not Found", tail):
        advice = (
            f"Go could not download a module needed by {binary.package}: is the Go module proxy "
            "reachable (GOPROXY)? Rerun `python -m kube_testbed.building`."
        )
    else:
        advice = f"`go build` of {binary.package} failed."
    return f"{advice}\nBuilding {binary.name}; last lines of {build_log}:\n{tail}"


def pin(kubernetes: str, etcd: str) -> None:
    """Rewrite both pinned modules for new releases and resolve their go.sum (``go mod tidy``)."""
    go = go_executable()
    upstream = _download_go_mod(go, KUBERNETES_MODULE, kubernetes)
    staging_modules = staging_module_names(upstream)
    _write_module(
        KUBERNETES_MODULE_DIR,
        kubernetes_go_mod(kubernetes, staging_modules, _go_directive(upstream), _godebug(upstream)),
    )
    etcd_upstream = _download_go_mod(go, ETCD_MODULE, etcd)
    _write_module(ETCD_MODULE_DIR, etcd_go_mod(etcd, _go_directive(etcd_upstream)))
    for module_dir in (KUBERNETES_MODULE_DIR, ETCD_MODULE_DIR):
        _go_query([go, "mod", "tidy"], module_dir)


def staging_module_names(upstream_go_mod: Path) -> list[str]:
    """Modules that kubernetes requires at ``v0.0.0`` and replaces with a ``./staging`` folder."""
    text = upstream_go_mod.read_text()
    replaced = set(re.findall(r"^\s*(k8s\.io/\S+)\s+=>\s+\./staging/", text, re.MULTILINE))
    required = set(re.findall(r"^\s*(k8s\.io/\S+)\s+v0\.0\.0\b", text, re.MULTILINE))
    return sorted(replaced & required)


def kubernetes_go_mod(
    version: str, staging_modules: Sequence[str], go_directive: str, godebug: Sequence[str]
) -> str:
    """The pinned module that builds the kubernetes commands against published staging modules."""
    staging_version = "v0." + version.removeprefix("v").split(".", 1)[1]
    replaces = "\n".join(f"\t{name} => {name} {staging_version}" for name in staging_modules)
    tools = "\n".join(f"\t{b.package}" for b in BINARIES if b.module_dir == KUBERNETES_MODULE_DIR)
    return (
        "// Pinned by `python -m kube_testbed.building --pin`: the kubernetes commands built\n"
        "// against the published staging modules instead of kubernetes' ./staging folders.\n"
        "module kube-testbed/kubernetes\n\n"
        f"go {go_directive}\n\n"
        + "".join(f"godebug {line}\n" for line in godebug)
        + f"\ntool (\n{tools}\n)\n\n"
        f"require {KUBERNETES_MODULE} {version}\n\n"
        f"replace (\n{replaces}\n)\n"
    )


def etcd_go_mod(version: str, go_directive: str) -> str:
    """The pinned module that builds the etcd server with etcd's own published modules."""
    return (
        "// Pinned by `python -m kube_testbed.building --pin`: the etcd server binary.\n"
        "module kube-testbed/etcd\n\n"
        f"go {go_directive}\n\n"
        f"tool {ETCD_MODULE}\n\n"
        f"require {ETCD_MODULE} {version}\n"
    )


def _write_module(module_dir: Path, go_mod: str) -> None:
    module_dir.mkdir(parents=True, exist_ok=True)
    (module_dir / "go.mod").write_text(go_mod)
    (module_dir / "go.sum").unlink(missing_ok=True)


def _download_go_mod(go: str, module: str, version: str) -> Path:
    output = _go_query([go, "mod", "download", "-json", f"{module}@{version}"], GOMOD_DIR)
    try:
        return Path(json.loads(output)["GoMod"])
    except (ValueError, KeyError) as error:
        raise BuildError(f"`go mod download {module}@{version}` said:\n{output}") from error


def _go_query(command: Sequence[str], cwd: Path) -> str:
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            env=go_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GO_COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise BuildError(
            f"`{' '.join(command)}` did not finish within {GO_COMMAND_TIMEOUT_SECONDS:.0f}s; "
            "is the Go module proxy reachable?"
        ) from error
    if result.returncode != 0:
        raise BuildError(
            f"`{' '.join(command)}` (in {cwd}) failed; is that version served by the Go module "
            f"proxy?\n{result.stderr.strip()}"
        )
    return result.stdout


def _go_version(go: str) -> str:
    return _go_query([go, "env", "GOVERSION"], GOMOD_DIR).strip()


def _required_version(go_mod: Path, module: str) -> str:
    text = go_mod.read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise BuildError(f"{go_mod} does not require {module}; regenerate it with --pin.")
    return match.group(1)


def _go_directive(go_mod: Path) -> str:
    match = re.search(r"^go\s+(\S+)", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise BuildError(f"{go_mod} has no `go` directive.")
    return match.group(1)


def _godebug(go_mod: Path) -> list[str]:
    return re.findall(r"^godebug\s+(\S.*)$", go_mod.read_text(), re.MULTILINE)


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise concurrent builds (parallel test runs) without corrupting the cache."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the pinned binaries, or with ``--pin K8S ETCD`` rewrite the pinned modules."""
    parser = argparse.ArgumentParser(prog="python -m kube_testbed.building", description=__doc__)
    parser.add_argument(
        "--pin",
        nargs=2,
        metavar=("KUBERNETES_VERSION", "ETCD_VERSION"),
        help="rewrite gomod/*/go.mod and go.sum for these releases (e.g. v1.37.2 v3.7.3)",
    )
    args = parser.parse_args(argv)
    try:
        if args.pin:
            pin(*args.pin)
            print(f"pinned kubernetes {kubernetes_version()}, etcd {etcd_version()}")
            return 0
        started = time.monotonic()
        target = build()
        print(f"{target} ({time.monotonic() - started:.0f}s)")
    except BuildError as error:
        print(f"kube_testbed.building: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
