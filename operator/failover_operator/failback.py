"""The failback guard: how ``spec.active`` goes back to a cluster left unplanned; pure.

Why it exists: after an unplanned or automatic failover, the cluster left may come back holding
records that never reached the other one, while the other took new records it never saw.
Switching back blindly loses or forks data. So a cluster left by an immediate switch (with
replication declared: otherwise there is nothing to protect) or by an automatic one is recorded
in ``status.leftUnplanned``, and a change of ``spec.active`` back to it (other than by the
automatic failover, which chose availability when the active cluster died) is:

- a planned switch waiting for the replication into it (``spec.switch.reverseReplication`` into
  main, ``replication`` into a failover cluster: fence, catch up, hand offsets off), which aborts
  and stays if that copy is not caught up;
- immediate, when the user set ``spec.switch.acceptDataLoss``;
- refused otherwise, with a message naming both ways forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from failover_operator import model

REFUSED = "FailbackRefused"
Way = Literal["planned", "immediate", "refused"]


@dataclass(frozen=True)
class Failback:
    """How a switch back to a cluster left unplanned goes; ``replication``: what it waits for."""

    way: Way
    replication: str | None = None
    message: str = ""


def covering(spec: model.KafkaFailoverSpec, cluster: str) -> str:
    """What copies data into ``cluster``: ``replication`` into a failover cluster,
    ``reverseReplication`` back into main (any cluster without the failover role)."""
    into_failover = _is_failover(spec, cluster)
    return spec.switch.replication if into_failover else spec.switch.reverse_replication


def _is_failover(spec: model.KafkaFailoverSpec, cluster: str) -> bool:
    found = spec.cluster(cluster)
    return found is not None and found.role == "failover"


def guard(
    previous: Mapping[str, Any], spec: model.KafkaFailoverSpec, *, name: str
) -> Failback | None:
    """None when ``spec.active`` is not a cluster left unplanned (no failback: usual rules)."""
    left = previous.get("leftUnplanned")
    if left is None or left != spec.active:
        return None
    if spec.switch.accept_data_loss:
        return Failback("immediate")
    replication = covering(spec, left)
    if replication != "none":
        return Failback("planned", replication)
    current = previous.get("activeCluster") or previous.get("desiredCluster")
    field = "replication" if _is_failover(spec, left) else "reverseReplication"
    return Failback(
        "refused",
        message=(
            f"failback to {left} refused: {left} was left by an unplanned failover, so it may "
            f"hold records {current} never got while {current} took records {left} never saw. "
            f"Replicate {current} back to {left} (MirrorMaker 2 from {current} to {left}) and "
            f"declare it: `kubectl patch kafkafailover {name} --type merge -p "
            f'\'{{"spec":{{"switch":{{"{field}":"mirrorMaker2"}}}}}}\'` (the failback '
            f"then waits for it to catch up and loses nothing), or accept the loss: "
            f"`kubectl patch kafkafailover {name} --type merge -p "
            f'\'{{"spec":{{"switch":{{"acceptDataLoss":true}}}}}}\'`'
        ),
    )


def left_after(
    previous: Mapping[str, Any],
    spec: model.KafkaFailoverSpec,
    *,
    source: str | None,
    mode: str,
    automatic: bool,
) -> str | None:
    """``status.leftUnplanned`` after a switch from ``source`` to ``spec.active`` completed."""
    left = previous.get("leftUnplanned")
    replicated = spec.switch.replication != "none" or spec.switch.reverse_replication != "none"
    unplanned = source is not None and source != spec.active and mode == "immediate"
    if unplanned and (automatic or replicated):
        return source
    if left == spec.active:
        return None  # failed back: nothing is left unplanned any more
    return left if isinstance(left, str) else None


def marked(previous: Mapping[str, Any], left: str | None) -> dict[str, Any]:
    """The status fields after a switch: ``leftUnplanned``, and the count of what it holds
    (``unreplicated``) dropped when the cluster left changed (it is counted again)."""
    fields: dict[str, Any] = {"leftUnplanned": left}
    if left != previous.get("leftUnplanned"):
        fields["unreplicated"] = None
    return fields
