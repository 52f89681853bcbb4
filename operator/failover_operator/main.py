"""``kafka-failover-operator``: runs the kopf operator with the project's handlers.

Why it exists: one documented entry point for the container and for tests. It watches the
namespace in ``WATCH_NAMESPACE`` (default: the pod's own, as the chart's namespaced RBAC expects)
or every namespace with ``--all-namespaces``, and serves a liveness endpoint.

Several replicas may run at once (a rolling upgrade, a standby): only the holder of the Lease
``kafka-failover-operator`` runs kopf; the others answer the liveness URL and wait (``electing``
tells how). ``--no-leader-election`` runs kopf at once, for local development with one process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

import kopf

from failover_operator import electing, leadership


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kafka-failover-operator")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="namespace to watch (repeatable); default: $WATCH_NAMESPACE",
    )
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint URL (default %(default)s)",
    )
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        help="act at once without the Lease (one process only: local development)",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def _fail(message: str) -> int:
    print(f"kafka-failover-operator: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    namespaces = args.namespace or [n for n in [os.environ.get("WATCH_NAMESPACE")] if n]
    if not namespaces and not args.all_namespaces:
        return _fail("set WATCH_NAMESPACE, pass --namespace NAME, or --all-namespaces")
    election = None
    if not args.no_leader_election:
        try:
            election = electing.Election.from_env(os.environ, namespaces)
        except leadership.SettingsError as error:
            return _fail(str(error))
    from failover_operator import handlers  # registers the handlers with kopf

    del handlers
    kopf.configure(verbose=args.verbose)
    options: dict[str, Any] = {
        "clusterwide": args.all_namespaces,
        "namespaces": namespaces or (),
        "liveness_endpoint": args.liveness,
        "standalone": True,
    }
    if election is None:
        kopf.run(**options)
        return 0
    kopf.on.probe(id="leadership")(lambda **_: f"leader {election.identity}")

    async def operate() -> None:
        await kopf.operator(**options)

    asyncio.run(electing.run_elected(operate, election, liveness=args.liveness))
    return 0


if __name__ == "__main__":
    sys.exit(main())
