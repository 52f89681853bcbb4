"""``make kind-e2e`` cannot run without a Docker engine; it must say so at once, not hang or build.

Build machines have the docker CLI but no engine, which is exactly the case users hit when Docker
is stopped: the script must exit 3 within seconds with a message that says what is missing and
what to run next, before it builds or downloads anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kind-e2e.sh"
BASH = shutil.which("bash") or "/bin/bash"
EXIT_NO_ENGINE = 3


def run_script(environment: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [BASH, str(SCRIPT)],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - started


def test_without_a_reachable_docker_engine_it_fails_fast_saying_so(tmp_path: Path) -> None:
    environment = dict(os.environ) | {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    if shutil.which("docker") is None:  # the CLI's own error when it cannot connect
        docker = fake_bin / "docker"
        docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
        docker.chmod(0o755)
        environment["PATH"] = f"{fake_bin}:{environment.get('PATH', '')}"

    result, seconds = run_script(environment)

    assert result.returncode == EXIT_NO_ENGINE, result.stderr
    assert "cannot reach a Docker engine (`docker info` failed: " in result.stderr
    assert "Cannot connect to the Docker daemon" in result.stderr
    assert "then run `make kind-e2e` again" in result.stderr
    assert seconds < 10, f"took {seconds:.1f}s"


def test_without_the_docker_cli_it_fails_fast_saying_so(tmp_path: Path) -> None:
    only_dirname = tmp_path / "bin"
    only_dirname.mkdir()
    (only_dirname / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    environment = dict(os.environ) | {"PATH": str(only_dirname)}

    result, seconds = run_script(environment)

    assert result.returncode == EXIT_NO_ENGINE, result.stderr
    assert "the docker CLI was not found on PATH" in result.stderr
    assert seconds < 10, f"took {seconds:.1f}s"


def test_the_script_is_executable_and_strict() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()
