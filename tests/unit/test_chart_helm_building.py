"""The helm build recipe: one pinned module, the release stamped into the binary, the marker.

Compiling takes minutes, so these check the recipe; the chart's other tests run the result.
"""

import json
from pathlib import Path

import pytest

from kube_testbed import helm_building


def test_the_committed_module_pins_one_helm_release_and_names_its_command() -> None:
    text = (helm_building.HELM_MODULE_DIR / "go.mod").read_text()

    assert helm_building.helm_version().startswith("v4.")
    assert "tool helm.sh/helm/v4/cmd/helm\n" in text
    assert (helm_building.HELM_MODULE_DIR / "go.sum").stat().st_size > 0


def test_a_pinned_module_requires_the_release_as_a_tool() -> None:
    text = helm_building.pinned_go_mod("v4.3.1", "1.26.0")

    assert "module kube-testbed/helm\n" in text
    assert "go 1.26.0\n" in text
    assert "require helm.sh/helm/v4 v4.3.1\n" in text


def test_helm_is_stamped_with_its_release_like_helms_own_makefile_does() -> None:
    flags = helm_building.ldflags("v4.3.1")

    assert flags.startswith("-s -w ")
    assert "-X helm.sh/helm/v4/internal/version.version=v4.3.1" in flags
    assert "-X helm.sh/helm/v4/internal/version.gitTreeState=clean" in flags


def test_the_build_command_is_readonly_and_writes_where_it_is_told(tmp_path: Path) -> None:
    command = helm_building.build_command("go", tmp_path / "helm", "v4.3.1")

    assert command[:3] == ["go", "build", "-mod=readonly"]
    assert command[-3:] == ["-o", str(tmp_path / "helm"), "helm.sh/helm/v4/cmd/helm"]


def test_a_folder_counts_as_built_only_with_a_matching_marker_and_the_binary(
    tmp_path: Path,
) -> None:
    assert not helm_building.is_complete(tmp_path)
    (tmp_path / "helm").write_text("#!/bin/sh\n")
    (tmp_path / "helm").chmod(0o755)
    marker = tmp_path / helm_building.MARKER_NAME
    marker.write_text(json.dumps({"fingerprint": "stale"}))
    assert not helm_building.is_complete(tmp_path)

    marker.write_text(json.dumps({"fingerprint": helm_building.fingerprint()}))
    assert helm_building.is_complete(tmp_path)

    (tmp_path / "helm").unlink()
    assert not helm_building.is_complete(tmp_path)


def test_helm_builds_into_its_own_versioned_cache_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBE_TESTBED_CACHE", str(tmp_path))

    assert helm_building.bin_dir("v4.0.0") == tmp_path / "helm" / "v4.0.0" / "bin"
