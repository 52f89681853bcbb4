"""Running the pinned helm against a chart folder and a control plane, with every call bounded.

Why it exists: the chart's tests lint, render and install ``charts/kafka-failover`` many times;
this keeps each call's isolation (helm's cache, config and data folders are the test's own, so no
repository or plugin of the machine's user leaks in), its timeout, and its error message (the
command and helm's stderr) in one place. :func:`template` returns the rendered objects parsed.
"""

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kube_testbed import helm_building
from kube_testbed.errors import KubeTestbedError

HELM_TIMEOUT_SECONDS = 120.0
"""A lint or template takes well under a second; an install waits for the API server only."""


class HelmError(KubeTestbedError):
    """A helm command exited with an error or did not finish in time."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


@dataclass(frozen=True)
class Helm:
    """The pinned helm binary with folders of its own."""

    binary: Path
    home: Path

    @classmethod
    def prepared(cls, home: Path) -> "Helm":
        """Build helm when missing (a no-op once ``make fetch`` built it), with ``home`` as its
        cache/config/data root."""
        home.mkdir(parents=True, exist_ok=True)
        return cls(helm_building.build(), home)

    def environment(self, kubeconfig: Path | None) -> dict[str, str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("HELM_") and key != "KUBECONFIG"
        }
        environment |= {
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if kubeconfig is not None:
            environment["KUBECONFIG"] = str(kubeconfig)
        return environment

    def run(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = HELM_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``helm args...``; raise :class:`HelmError` on a non-zero exit (when ``check``)."""
        command = [str(self.binary), *args]
        try:
            result = subprocess.run(
                command,
                env=self.environment(kubeconfig),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise HelmError(f"`helm {' '.join(args)}` did not finish within {timeout}s") from error
        if check and result.returncode != 0:
            raise HelmError(
                f"`helm {' '.join(args)}` exited with {result.returncode}:\n"
                f"{result.stderr.strip()}",
                stderr=result.stderr,
            )
        return result

    def template(
        self,
        chart: Path,
        *,
        release: str = "kfo",
        namespace: str = "kafka-failover",
        values: Sequence[Path] = (),
        settings: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """``helm template`` the chart and return every rendered object (CRDs excluded)."""
        args = ["template", release, str(chart), "--namespace", namespace]
        args += [arg for path in values for arg in ("--values", str(path))]
        args += [arg for setting in settings for arg in ("--set", setting)]
        rendered = self.run(*args).stdout
        return [document for document in yaml.safe_load_all(rendered) if document]
