"""Build the gateway and operator images on this machine, cached by the content that makes them.

Why it exists: the product ships as two images, so the tests run pods from the images users get,
not from the venv. Image registries are out of reach here, so the base is built from Debian's
packages (``mmdebstrap``: CPython 3.11 and its venv module, nothing else) and handed to the
Dockerfiles as ``BASE_IMAGE``; elsewhere the Dockerfiles default to the public slim image. The
engine is docker when a daemon answers, else podman (installed from Debian's packages with runc
and mmdebstrap when missing and this is root; podman here needs runc and no default ulimits).

Every image is tagged with a hash of what goes into it (Dockerfile, pinned requirements, the
sources it copies, the base), so a warm ``make test`` finds it and builds nothing. The base
root filesystem is cached as a tar under the user's cache directory; podman keeps images in its
own storage, shared by every clone on the machine.

Usage: ``python -m kafka_testbed.images`` (``make images``) builds both and prints their sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kafka_testbed import fetching

REPO = Path(__file__).resolve().parents[2]
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# media-types satisfies python's "media-types | mime-support" without mailcap, which pulls in
# 46 MB of perl.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "media-types")
# Trimmed from the base: documentation, manual pages and translations nobody reads in a pod.
_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*",  # iconv modules; Python has its own codecs
)
ENGINE_TOOLS = {"podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}
BUILD_TIMEOUT_SECONDS = 1200
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class ImagesUnavailable(RuntimeError):
    """No container engine here, and none can be installed: says what is missing."""


@dataclass(frozen=True)
class Image:
    """One product image: its Dockerfile and every path its content hash covers."""

    name: str
    dockerfile: str
    inputs: tuple[str, ...]


GATEWAY = Image(
    "gateway",
    "Dockerfile.proxy",
    ("Dockerfile.proxy", "requirements/gateway.txt", "pyproject.toml", "README.md", "proxy"),
)
OPERATOR = Image(
    "operator",
    "Dockerfile.operator",
    (
        "Dockerfile.operator", "requirements/operator.txt", "pyproject.toml", "README.md",
        "proxy", "operator",
    ),
)  # fmt: skip
IMAGES = (GATEWAY, OPERATOR)


@dataclass(frozen=True)
class Engine:
    """A container engine command line: ``docker`` or ``podman --runtime runc``."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *arguments: str, timeout: float = 120, check: bool = True, quiet: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.argv, *arguments],
            env={**os.environ, **self.env},
            capture_output=quiet,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join([*self.argv, *arguments[:3]])} ... exited {result.returncode}: "
                f"{(result.stderr or '')[-2000:]}"
            )
        return result

    def has_image(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False).returncode == 0

    def remove(self, container: str) -> None:
        self.run("rm", "--force", container, check=False, timeout=60)

    def main_pid(self, container: str) -> int:
        """The host pid of the container's first process (the gateway itself)."""
        found = self.run("inspect", "--format", "{{.State.Pid}}", container)
        return int(found.stdout.strip())


def cache_dir() -> Path:
    return fetching.cache_root() / "images"


def containers_conf() -> Path:
    """podman's settings for these machines: no default ulimits (runc refuses them here)."""
    path = cache_dir() / "containers.conf"
    text = "[containers]\ndefault_ulimits = []\n"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def docker_engine() -> Engine | None:
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(
        ["docker", "info"], capture_output=True, text=True, timeout=30, check=False
    )
    return Engine("docker", ("docker",)) if probe.returncode == 0 else None


def install_debian_packages(packages: Iterable[str]) -> None:
    """``apt-get install`` as root; refreshes the package lists once if the first try fails."""
    wanted = list(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ImagesUnavailable(
            f"neither docker nor podman can run here, and {', '.join(wanted)} cannot be "
            "installed (needs root and apt-get): install docker, or podman, runc and mmdebstrap"
        )
    command = ["apt-get", "install", "-y", "--no-install-recommends", *wanted]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"kafka_testbed: installing {' '.join(wanted)} from Debian", file=sys.stderr)
    first = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if first.returncode == 0:
        return
    subprocess.run(["apt-get", "update"], env=environment, capture_output=True, check=False)
    second = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if second.returncode != 0:
        raise ImagesUnavailable(f"apt-get could not install {wanted}: {second.stderr[-1500:]}")


def podman_engine(*, install: bool = True) -> Engine:
    missing = [package for package, tool in ENGINE_TOOLS.items() if shutil.which(tool) is None]
    if missing:
        if not install:
            raise ImagesUnavailable(f"podman is not usable here: missing {', '.join(missing)}")
        install_debian_packages(missing)
    return Engine(
        "podman",
        ("podman", "--runtime", "runc"),
        {"CONTAINERS_CONF": str(containers_conf())},
    )


def engine(*, install: bool = True) -> Engine:
    """docker when its daemon answers, else podman (installed when missing and allowed)."""
    return docker_engine() or podman_engine(install=install)


def content_hash(paths: Iterable[str], *extra: str) -> str:
    """Hash of the files under ``paths`` (names and bytes) and ``extra``. Only files git tracks
    count when this is a git checkout (an editable install's egg-info or a stray file changes
    nothing users get); bytecode never counts."""
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode() + b"\0")
    tracked = _tracked_files()
    for relative in paths:
        root = REPO / relative
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = str(path.relative_to(REPO))
            if tracked is not None and name not in tracked:
                continue
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _tracked_files() -> set[str] | None:
    """Paths git tracks in :data:`REPO`, or None outside a git checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return None
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False, timeout=60
    )
    if listed.returncode != 0:
        return None
    return {name for name in listed.stdout.decode().split("\0") if name}


def base_image(engine: Engine) -> str:
    """The Debian-built base (CPython 3.11 with venv), imported into ``engine`` once."""
    key = content_hash(
        (), DEBIAN_SUITE, DEBIAN_MIRROR, "merged-usr", *BASE_PACKAGES, *_DPKG_EXCLUDES
    )
    tag = f"localhost/kafka-failover/base:{DEBIAN_SUITE}-{key}"
    if engine.has_image(tag):
        return tag
    rootfs = cache_dir() / f"base-{DEBIAN_SUITE}-{key}.tar"
    if not rootfs.is_file():
        if shutil.which("mmdebstrap") is None:
            install_debian_packages(["mmdebstrap"])
        started = time.monotonic()
        partial = rootfs.with_suffix(".partial.tar")
        command = [
            "mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            *(f"--dpkgopt={option}" for option in _DPKG_EXCLUDES),
            # Merge /usr by mmdebstrap's hook rather than the usrmerge package (which needs perl).
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*",
            DEBIAN_SUITE, str(partial), DEBIAN_MIRROR,
        ]  # fmt: skip
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"mmdebstrap failed: {result.stderr[-2000:]}")
        partial.rename(rootfs)
        print(f"kafka_testbed: Debian base built in {time.monotonic() - started:.0f}s: {rootfs}")
    engine.run("import", "--change", 'CMD ["python3"]', str(rootfs), tag, timeout=600)
    return tag


def image_tag(image: Image, base: str) -> str:
    return f"localhost/kafka-failover/{image.name}:{content_hash(image.inputs, base)}"


def build(engine: Engine, image: Image, base: str) -> str:
    """Build ``image`` on ``base`` unless an image of the same content exists; its tag."""
    tag = image_tag(image, base)
    if engine.has_image(tag):
        return tag
    started = time.monotonic()
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
        check=False,
    ).stdout.strip() or "unknown"  # fmt: skip
    # Where PyPI is reached through a TLS-inspecting proxy, its CA is in the host's bundle only:
    # RUN steps see the host's bundle (podman mounts it for the build, it is not in the image).
    trust = (
        ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        if engine.name == "podman" and Path(HOST_CA_BUNDLE).is_file()
        else []
    )
    result = engine.run(
        "build", "--network", "host", "--file", image.dockerfile, *trust,
        "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"REVISION={revision}",
        "--tag", tag, "--tag", f"localhost/kafka-failover/{image.name}:latest", str(REPO),
        timeout=BUILD_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"building {image.name} failed:\n{result.stdout[-3000:]}{result.stderr}")
    print(f"kafka_testbed: built {tag} in {time.monotonic() - started:.0f}s")
    _forget_older(engine, image, tag)
    return tag


def _forget_older(engine: Engine, image: Image, current: str) -> None:
    """Remove this image's builds of other content, and dangling layers: disk stays bounded."""
    repository = f"localhost/kafka-failover/{image.name}"
    listed = engine.run(
        "images", "--format", "{{.Repository}}:{{.Tag}}", repository, check=False
    ).stdout.split()
    for tag in listed:
        if tag.startswith(repository + ":") and tag not in (current, f"{repository}:latest"):
            engine.run("rmi", tag, check=False)
    engine.run("image", "prune", "--force", check=False)


@dataclass(frozen=True)
class ContainerImage:
    """An image and the engine that runs it, as a pod would: host network, non-root, read-only."""

    engine: Engine
    tag: str

    def run_command(
        self,
        name: str,
        arguments: Sequence[str],
        *,
        mounts: Mapping[Path, str] | None = None,
        env: Mapping[str, str] | None = None,
        user: str = "10001:10001",
    ) -> list[str]:
        """``<engine> run`` in the foreground (the caller supervises it; ``--rm`` cleans up)."""
        command = [
            *self.engine.argv, "run", "--rm", "--name", name, "--network", "host",
            "--read-only", "--user", user, "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--pull", "never",
        ]  # fmt: skip
        for local, inside in (mounts or {}).items():
            command += ["--volume", f"{local}:{inside}:ro"]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        return [*command, self.tag, *arguments]


@dataclass(frozen=True)
class BuiltImages:
    engine: Engine
    gateway: str
    operator: str


def build_all(*, install: bool = True) -> BuiltImages:
    """Both product images, built or found: the engine and their tags."""
    chosen = engine(install=install)
    if chosen.name == "docker":
        base = os.environ.get("KAFKA_FAILOVER_BASE_IMAGE", "python:3.11-slim")
    else:
        base = base_image(chosen)
    return BuiltImages(chosen, build(chosen, GATEWAY, base), build(chosen, OPERATOR, base))


RELEASED = {
    "gateway": "ghcr.io/kafka-failover/gateway",
    "operator": "ghcr.io/kafka-failover/operator",
}
RELEASE_VERSION = "0.1.0"  # the chart's appVersion and the operator's default gateway image tag


def tag_as_released(built: BuiltImages) -> None:
    """Tag the local builds with the names Pods and the chart ask for, as a registry serves
    them (``--pull never`` then finds them)."""
    for name, tag in (("gateway", built.gateway), ("operator", built.operator)):
        built.engine.run("tag", tag, f"{RELEASED[name]}:{RELEASE_VERSION}")


def image_size(engine: Engine, tag: str) -> int:
    inspected = json.loads(engine.run("image", "inspect", tag).stdout)
    return int(inspected[0]["Size"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    try:
        built = build_all()
    except ImagesUnavailable as error:
        print(f"make images: {error}", file=sys.stderr)
        return 2
    for tag in (built.gateway, built.operator):
        print(f"{tag}  {image_size(built.engine, tag) / 1e6:.1f} MB ({built.engine.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
