"""The container images' recipes, read as text: pinned inputs, non-root, no compiler, no lab.

The images are built and run for real by ``tests/integration/test_images.py`` (podman); these
tests check what the recipes promise without building: each image's pinned set stays inside its
distribution's ranges and is closed under its dependencies, the gateway's set has no Kubernetes
in it, the final stage runs the console script as UID 10001 with OCI labels, without a compiler,
and neither copies the test lab.
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
GATEWAY = tomllib.loads((REPO / "pyproject.toml").read_text())
OPERATOR = tomllib.loads((REPO / "operator" / "pyproject.toml").read_text())
# Dockerfile -> (console script, its distribution's pyproject, pinned requirements file)
IMAGES = {
    "Dockerfile.proxy": ("kafka-failover-gateway", GATEWAY, "requirements/gateway.txt"),
    "Dockerfile.operator": ("kafka-failover-operator", OPERATOR, "requirements/operator.txt"),
}
OWN = {"kafka-failover", "kafka-failover-operator"}
PIN = "regenerate with `make pin-runtime` (scripts/pin_runtime_requirements.py)"


def pins(requirements: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (REPO / requirements).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line.strip())
            assert match, f"{requirements}: {line!r} is not an exact `name==version` pin"
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def applies_on_linux(requirement: Requirement) -> bool:
    environment = {"sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    return requirement.marker is None or requirement.marker.evaluate(environment)


def final_stage(dockerfile: str) -> str:
    text = (REPO / dockerfile).read_text()
    return text[text.rindex("\nFROM ") :]


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_every_runtime_dependency_of_each_distribution_is_pinned_inside_its_range(
    dockerfile: str,
) -> None:
    _, pyproject, requirements = IMAGES[dockerfile]
    pinned = pins(requirements)
    for text in pyproject["project"]["dependencies"]:
        requirement = Requirement(text)
        if not applies_on_linux(requirement) or requirement.name in OWN:
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in {requirements}: {PIN}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{name}=={pinned[name]} is outside pyproject's range {requirement.specifier}: {PIN}"
        )


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_no_test_or_dev_only_package_is_pinned_for_an_image(dockerfile: str) -> None:
    extras = GATEWAY["project"]["optional-dependencies"]
    extra_names = {
        canonicalize_name(Requirement(t).name) for group in extras.values() for t in group
    }
    runtime_names = {
        canonicalize_name(Requirement(t).name)
        for pyproject in (GATEWAY, OPERATOR)
        for t in pyproject["project"]["dependencies"]
    }
    assert not (set(pins(IMAGES[dockerfile][2])) & (extra_names - runtime_names))


def test_the_gateway_image_has_no_kubernetes_client_and_no_kopf() -> None:
    pinned = pins("requirements/gateway.txt")
    assert not {"kopf", "kubernetes"} & set(pinned), "the gateway never talks to Kubernetes"
    assert {"kopf", "kubernetes"} <= set(pins("requirements/operator.txt"))


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_the_pinned_set_is_closed_under_the_dependencies_of_what_the_venv_has_installed(
    dockerfile: str,
) -> None:
    pinned = pins(IMAGES[dockerfile][2])
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
            if applies_on_linux(requirement) and requirement.name not in OWN:
                dependency = canonicalize_name(requirement.name)
                assert dependency in pinned, f"{name} needs {requirement}, not pinned: {PIN}"
                assert requirement.specifier.contains(pinned[dependency], prereleases=True)
    assert checked, "no pinned version matches the venv: regenerate the pins"


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_each_image_installs_only_its_pins_in_a_builder_stage_and_copies_the_venv(
    dockerfile: str,
) -> None:
    _, _, requirements = IMAGES[dockerfile]
    text = (REPO / dockerfile).read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${BASE_IMAGE}"] * 2
    builder = text[: text.rindex("\nFROM ")]
    assert "AS builder" in builder and "--only-binary=:all:" in builder
    assert f"-r {requirements}" in builder and "pip check" in builder
    assert "COPY --from=builder /opt/kafka-failover /opt/kafka-failover" in final_stage(dockerfile)


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_no_image_copies_the_test_lab(dockerfile: str) -> None:
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+)", (REPO / dockerfile).read_text(), re.MULTILINE)
    assert not [path for path in copied if path.startswith(("lab", "tests", "bench"))]


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_each_image_runs_its_console_script_as_uid_10001_without_a_compiler(
    dockerfile: str,
) -> None:
    script, pyproject, _ = IMAGES[dockerfile]
    final = final_stage(dockerfile)
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert re.search(rf'^ENTRYPOINT \["{script}"\]$', final, re.MULTILINE)
    assert script in pyproject["project"]["scripts"]
    assert not re.search(r"apt-get|apk |gcc|build-essential|\bmake\b", final)
    for label in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in final


def test_the_docker_build_context_leaves_out_the_venv_caches_and_git() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored.index("*") < ignored.index("!pyproject.toml"), "exclude all, then allow"
    assert "!requirements/gateway.txt" in ignored and "!requirements/operator.txt" in ignored
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
