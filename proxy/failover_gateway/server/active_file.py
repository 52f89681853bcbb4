"""Following the ``activeFile``: how a gateway pod learns the active cluster without a restart.

Why it exists: on Kubernetes the operator keeps the active cluster in a ConfigMap mounted into
every gateway pod. A pod started in the middle of a switch must start on the current cluster, and
a pod the operator could not reach must still converge. The file holds either a bare cluster name
(``failover``) or a small YAML/JSON map (``{cluster: failover, epoch: 7}``). A stale epoch in the
file is ignored, exactly like a stale API call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger("failover_gateway.active_file")


class ActiveFileError(Exception):
    """The file exists but does not name a cluster in a readable way."""


@dataclass(frozen=True)
class ActiveChoice:
    cluster: str
    epoch: int | None


def parse_active(text: str, source: str) -> ActiveChoice:
    """Read ``failover`` or ``{cluster: failover, epoch: 7}``."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ActiveFileError(f"{source}: not YAML: {error}") from None
    if isinstance(raw, str) and raw.strip():
        return ActiveChoice(raw.strip(), None)
    if isinstance(raw, dict) and isinstance(raw.get("cluster"), str):
        epoch = raw.get("epoch")
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
            raise ActiveFileError(f"{source}: epoch must be an integer, got {epoch!r}")
        if epoch is not None and epoch < 0:
            raise ActiveFileError(f"{source}: epoch must not be negative, got {epoch}")
        return ActiveChoice(raw["cluster"], epoch)
    raise ActiveFileError(
        f"{source}: expected a cluster name or {{cluster: <name>, epoch: <int>}}, got {raw!r}"
    )


def read_active(path: Path) -> ActiveChoice | None:
    """The choice in the file, or None when the file does not exist (yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ActiveFileError(f"{path}: cannot read: {error.strerror}") from None
    return parse_active(text, str(path))


async def follow(
    path: Path,
    apply: Callable[[ActiveChoice], Awaitable[None]],
    *,
    interval: float,
) -> None:
    """Poll the file and apply every change. Polling (not inotify) because Kubernetes updates
    mounted ConfigMaps by swapping a symlink, which inotify watchers famously miss."""
    last: ActiveChoice | None = None
    while True:
        try:
            choice = read_active(path)
        except ActiveFileError as error:
            log.error("ignoring active file: %s", error)
            choice = last
        if choice is not None and choice != last:
            last = choice
            await apply(choice)
        await asyncio.sleep(interval)
