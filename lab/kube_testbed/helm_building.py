"""Building the helm command line from the Go module proxy, once, for the chart's tests.

The chart's tests lint, render and install ``charts/kafka-failover`` with a real helm, and there is
no download site for release binaries here, only the Go module proxy. Helm is an ordinary Go module
(no staging replacements, unlike Kubernetes), so the pinned module in ``gomod/helm`` just requires
``helm.sh/helm/v4`` at one release and names its command as a ``tool``; its go.mod and go.sum are
committed, so every machine compiles the same sources.

The recipe is :mod:`kube_testbed.building`'s and reuses its helpers (same package): the binary
goes to ``~/.cache/kafka-failover/helm/<version>/bin``, a marker written after a complete build
makes the next call a no-op, a build goes to a staging folder first, and Go's caches are shared in
``~/.cache/kafka-failover/go``. The linker stamps the release as helm's own Makefile does, so
``helm version`` tells the truth.

``python -m kube_testbed.helm_building`` builds (``make fetch`` runs it);
``python -m kube_testbed.helm_building --pin v4.Y.Z`` rewrites the pinned module for an upgrade.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from kube_testbed import building
from kube_testbed.errors import BuildError

HELM_MODULE_DIR = building.GOMOD_DIR / "helm"
HELM_MODULE = "helm.sh/helm/v4"
HELM = building.Binary("helm", f"{HELM_MODULE}/cmd/helm", HELM_MODULE_DIR)
MARKER_NAME = ".complete.json"
RECIPE_REVISION = "1"
"""Bump when the build command changes in a way the go.mod/go.sum files do not show."""


def helm_version() -> str:
    """The pinned helm release, e.g. ``v4.3.1`` (read from the committed go.mod)."""
    return building._required_version(HELM_MODULE_DIR / "go.mod", HELM_MODULE)


def bin_dir(version: str | None = None) -> Path:
    """Where one helm release's binary lives (whether built yet or not)."""
    return building.cache_root() / "helm" / (version or helm_version()) / "bin"


def helm_path() -> Path:
    """The path of the built ``helm``; see :func:`build`."""
    return bin_dir() / HELM.name


def fingerprint() -> str:
    """A hash of what decides the binary: the pinned module and the build recipe."""
    digest = hashlib.sha256(RECIPE_REVISION.encode())
    for name in ("go.mod", "go.sum"):
        digest.update(name.encode())
        digest.update((HELM_MODULE_DIR / name).read_bytes())
    return digest.hexdigest()


def is_complete(target: Path | None = None) -> bool:
    """True when ``target`` holds a finished build of exactly the pinned module."""
    target = target or bin_dir()
    try:
        marker = json.loads((target / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("fingerprint") == fingerprint() and os.access(target / HELM.name, os.X_OK)


def build(*, log: bool = True) -> Path:
    """Make sure the pinned helm is built and return its path; a no-op when complete."""
    target = bin_dir()
    if not is_complete(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with building._exclusive_lock(target.parent / ".build.lock"):
            if not is_complete(target):
                _build_into(target, log=log)
    return target / HELM.name


def ldflags(version: str) -> str:
    """Linker flags: strip symbols and stamp the release, as helm's Makefile does for a tag."""
    stamps = {"version": version, "metadata": "", "gitTreeState": "clean"}
    return " ".join(
        ["-s", "-w"]
        + [f"-X {HELM_MODULE}/internal/version.{key}={value}" for key, value in stamps.items()]
    )


def build_command(go: str, output: Path, version: str) -> list[str]:
    """The ``go build`` invocation (run in the pinned module's folder)."""
    return [
        go,
        "build",
        "-mod=readonly",
        "-ldflags",
        ldflags(version),
        "-o",
        str(output),
        HELM.package,
    ]


def pinned_go_mod(version: str, go_directive: str) -> str:
    """The pinned module that builds helm's command line at ``version``."""
    return (
        "// Pinned by `python -m kube_testbed.helm_building --pin`: the helm command line.\n"
        "module kube-testbed/helm\n\n"
        f"go {go_directive}\n\n"
        f"tool {HELM.package}\n\n"
        f"require {HELM_MODULE} {version}\n"
    )


def pin(version: str) -> None:
    """Rewrite the pinned module for another helm release and resolve its go.sum."""
    go = building.go_executable()
    listing = building._go_query(
        [go, "mod", "download", "-json", f"{HELM_MODULE}@{version}"], building.GOMOD_DIR
    )
    try:
        upstream = Path(json.loads(listing)["GoMod"])
    except (ValueError, KeyError) as error:
        raise BuildError(f"`go mod download {HELM_MODULE}@{version}` said:\n{listing}") from error
    HELM_MODULE_DIR.mkdir(parents=True, exist_ok=True)
    (HELM_MODULE_DIR / "go.mod").write_text(
        pinned_go_mod(version, building._go_directive(upstream))
    )
    (HELM_MODULE_DIR / "go.sum").unlink(missing_ok=True)
    building._go_query([go, "mod", "tidy"], HELM_MODULE_DIR)


def _build_into(target: Path, *, log: bool) -> None:
    go = building.go_executable()
    version = helm_version()
    staging = Path(tempfile.mkdtemp(prefix=".bin.", dir=target.parent))
    started = time.monotonic()
    try:
        _say(log, f"kube_testbed: building helm {version} ({HELM.package}) ...")
        command = build_command(go, staging / HELM.name, version)
        building._run_go(command, HELM, target.parent / "build.log")
        marker = {
            "fingerprint": fingerprint(),
            "helm": version,
            "go": building._go_version(go),
            "seconds": round(time.monotonic() - started),
        }
        _say(log, f"kube_testbed: built helm in {marker['seconds']}s")
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=1))
        staging.chmod(0o755)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the pinned helm, or with ``--pin VERSION`` rewrite the pinned module."""
    parser = argparse.ArgumentParser(
        prog="python -m kube_testbed.helm_building", description=__doc__
    )
    parser.add_argument("--pin", metavar="HELM_VERSION", help="e.g. v4.3.1")
    args = parser.parse_args(argv)
    try:
        if args.pin:
            pin(args.pin)
            print(f"pinned helm {helm_version()}")
            return 0
        started = time.monotonic()
        path = build()
        print(f"{path} ({time.monotonic() - started:.0f}s)")
    except BuildError as error:
        print(f"kube_testbed.helm_building: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
