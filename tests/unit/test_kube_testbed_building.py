"""The Kubernetes build recipe: pinned modules, staging replacements, version stamps, the marker.

Compiling takes minutes, so these check the recipe itself; the integration tests run the result.
"""

import json
from pathlib import Path

import pytest

from kube_testbed import building

UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/spf13/cobra v1.10.0
\tk8s.io/api v0.0.0
\tk8s.io/apiserver v0.0.0
\tk8s.io/utils v0.0.0-20261023123148-ca04ba58ecab
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiserver => ./staging/src/k8s.io/apiserver
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
"""


def test_staging_modules_are_those_required_at_v0_0_0_and_replaced_by_a_staging_folder(
    tmp_path: Path,
) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(UPSTREAM_GO_MOD)

    assert building.staging_module_names(go_mod) == ["k8s.io/api", "k8s.io/apiserver"]


def test_the_pinned_module_replaces_staging_modules_by_their_v0_release() -> None:
    text = building.kubernetes_go_mod("v1.37.2", ["k8s.io/api"], "1.26.0", ["default=go1.26"])

    assert "\tk8s.io/api => k8s.io/api v0.37.2\n" in text
    assert "require k8s.io/kubernetes v1.37.2\n" in text
    assert "godebug default=go1.26\n" in text
    assert "\tk8s.io/kubernetes/cmd/kube-apiserver\n" in text


def test_the_committed_modules_pin_one_release_and_replace_every_staging_module_it_needs() -> None:
    text = (building.KUBERNETES_MODULE_DIR / "go.mod").read_text()
    staging_version = "v0." + building.kubernetes_version().removeprefix("v").split(".", 1)[1]

    for name in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go", "k8s.io/component-base"):
        assert f"{name} => {name} {staging_version}\n" in text
    assert building.etcd_version().startswith("v3.")
    assert (building.KUBERNETES_MODULE_DIR / "go.sum").stat().st_size > 0
    assert (building.ETCD_MODULE_DIR / "go.sum").stat().st_size > 0


def test_binaries_are_stamped_with_the_release_like_kubernetes_own_builds() -> None:
    flags = building.ldflags("v1.37.2")

    assert flags.startswith("-s -w ")
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "-X k8s.io/component-base/version.gitMinor=37" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMajor=1" in flags


def test_a_folder_counts_as_built_only_with_a_matching_marker_and_every_binary(
    tmp_path: Path,
) -> None:
    assert not building.is_complete(tmp_path)
    for binary in building.BINARIES:
        (tmp_path / binary.name).write_text("#!/bin/sh\n")
        (tmp_path / binary.name).chmod(0o755)
    marker = tmp_path / building.MARKER_NAME
    marker.write_text(json.dumps({"fingerprint": "stale"}))
    assert not building.is_complete(tmp_path)

    marker.write_text(json.dumps({"fingerprint": building.fingerprint()}))
    assert building.is_complete(tmp_path)

    (tmp_path / "etcd").unlink()
    assert not building.is_complete(tmp_path)


def test_go_runs_with_caches_in_the_project_and_a_removable_module_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(building.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setenv("GOFLAGS", "-buildvcs=false")

    environment = building.go_environment()

    assert environment["GOMODCACHE"] == str(tmp_path / "go" / "mod")
    assert environment["GOCACHE"] == str(tmp_path / "go" / "build")
    assert environment["GOFLAGS"].split() == ["-buildvcs=false", "-modcacherw", "-trimpath"]
    assert building.bin_dir("v1.2.3") == tmp_path / "k8s" / "v1.2.3" / "bin"
