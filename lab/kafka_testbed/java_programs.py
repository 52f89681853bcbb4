"""Compiling and running the small Java programs under ``lab/java`` against a chosen client.

Client-version tests need the *Java* client's own reconnect behaviour (3.7 has no KIP-899
rebootstrap, 4.x has), so the program is compiled with javac against the jars of that version and
cached per (source, version) in the git-ignored cache folder.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kafka_testbed import fetching, supervising
from kafka_testbed.errors import ToolError

JAVA_SOURCES = Path(__file__).resolve().parents[1] / "java"
COMPILE_TIMEOUT_SECONDS = 120.0


def _javac() -> str:
    javac = shutil.which("javac")
    if javac is None:
        raise ToolError("javac not found: install a JDK 17+ (Debian: openjdk-17-jdk-headless)")
    return javac


def compiled(program: str, jars_dir: Path) -> Path:
    """The folder holding ``program``'s classes built against ``jars_dir`` (built when missing)."""
    source = JAVA_SOURCES / f"{program}.java"
    digest = hashlib.sha256(source.read_bytes() + str(jars_dir).encode()).hexdigest()[:16]
    target = fetching.cache_root() / "java-classes" / f"{program}-{digest}"
    if (target / f"{program}.class").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [_javac(), "-d", str(target), "-cp", fetching.classpath(jars_dir), str(source)],
        capture_output=True,
        text=True,
        timeout=COMPILE_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise ToolError(f"javac {source.name} failed:\n{result.stderr[-3000:]}")
    return target


def start(
    program: str, jars_dir: Path, arguments: Sequence[str], log_path: Path
) -> supervising.Process:
    """Run ``program`` in its own process group; its stdout and stderr go to ``log_path``."""
    classes = compiled(program, jars_dir)
    java = shutil.which("java")
    if java is None:
        raise ToolError("java not found: install a JDK 17+")
    classpath = f"{classes}:{fetching.classpath(jars_dir)}"
    command = [
        java,
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        classpath,
        program,
        *arguments,
    ]
    return supervising.spawn(command, log_path)
