"""The container images' recipes, read without Docker: pinned inputs, non-root, no compiler.

There is no Docker engine on the build machines, so the Dockerfiles cannot be built here; hadolint
(``make lint``) checks them as Dockerfiles, and these tests check what this project promises about
them: the pinned runtime set stays inside pyproject's ranges and closed under its dependencies,
the final stage runs the console scripts as UID 10001 with OCI labels and without a compiler.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "requirements" / "runtime.txt"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
IMAGES = {
    "Dockerfile.proxy": "kafka-failover-gateway",
    "Dockerfile.operator": "kafka-failover-operator",
}
PIN = "regenerate with `make pin-runtime` (scripts/pin_runtime_requirements.py)"


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in RUNTIME.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line.strip())
            assert match, f"requirements/runtime.txt: {line!r} is not an exact `name==version` pin"
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def applies_on_linux(requirement: Requirement) -> bool:
    environment = {"sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    return requirement.marker is None or requirement.marker.evaluate(environment)


def final_stage(dockerfile: str) -> str:
    text = (REPO / dockerfile).read_text()
    return text[text.rindex("\nFROM ") :]


def test_every_runtime_dependency_of_pyproject_is_pinned_inside_its_range() -> None:
    pinned = pins()
    for text in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(text)
        if not applies_on_linux(requirement):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, (
            f"{requirement.name} is not pinned in requirements/runtime.txt: {PIN}"
        )
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{name}=={pinned[name]} is outside pyproject's range {requirement.specifier}: {PIN}"
        )


def test_no_test_or_dev_only_package_is_pinned_for_the_images() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    extra_names = {
        canonicalize_name(Requirement(t).name) for group in extras.values() for t in group
    }
    runtime_names = {
        canonicalize_name(Requirement(t).name) for t in PYPROJECT["project"]["dependencies"]
    }
    assert not (set(pins()) & (extra_names - runtime_names))


def test_the_pinned_set_is_closed_under_the_dependencies_of_what_the_venv_has_installed() -> None:
    pinned = pins()
    checked = 0
    for name, version in pinned.items():
        try:
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if installed.version != version:
            continue  # metadata of another version is not here: pip check in the image covers it
        checked += 1
        for text in installed.requires or []:
            requirement = Requirement(text)
            if applies_on_linux(requirement):
                dependency = canonicalize_name(requirement.name)
                assert dependency in pinned, f"{name} needs {requirement}, not pinned: {PIN}"
                assert requirement.specifier.contains(pinned[dependency], prereleases=True)
    assert checked, "no pinned version matches the venv: regenerate the pins"


@pytest.mark.parametrize(("dockerfile", "script"), IMAGES.items())
def test_each_image_builds_wheels_in_a_builder_stage_and_installs_only_the_pins(
    dockerfile: str, script: str
) -> None:
    text = (REPO / dockerfile).read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2
    assert "AS builder" in text and "pip wheel" in text and "--only-binary=:all:" in text
    final = final_stage(dockerfile)
    assert "--no-index" in final and "--no-deps" in final and "pip check" in final
    assert "runtime.txt" in final


@pytest.mark.parametrize(("dockerfile", "script"), IMAGES.items())
def test_each_image_runs_its_console_script_as_uid_10001_without_a_compiler(
    dockerfile: str, script: str
) -> None:
    final = final_stage(dockerfile)
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert re.search(rf'^ENTRYPOINT \["{script}"\]$', final, re.MULTILINE)
    assert script in PYPROJECT["project"]["scripts"]
    assert not re.search(r"apt-get|apk |gcc|build-essential|\bmake\b", final)
    for label in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in final


def test_the_docker_build_context_leaves_out_the_venv_caches_and_git() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored.index("*") < ignored.index("!pyproject.toml"), "exclude all, then allow"
    assert "!requirements/runtime.txt" in ignored
    for path in (".venv", ".cache", ".git"):
        assert f"!{path}" not in ignored


def test_hadolint_finds_nothing_in_either_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), *IMAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
