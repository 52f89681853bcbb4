"""``kafka-failover-operator``: runs the kopf operator with the project's handlers.

Why it exists: one documented entry point for the container and for tests. It watches the
namespace in ``WATCH_NAMESPACE`` (default: the pod's own, as the chart's namespaced RBAC expects)
or every namespace with ``--all-namespaces``, and serves a liveness endpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import kopf


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
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    namespaces = args.namespace or [n for n in [os.environ.get("WATCH_NAMESPACE")] if n]
    if not namespaces and not args.all_namespaces:
        print(
            "kafka-failover-operator: set WATCH_NAMESPACE, pass --namespace NAME, or "
            "--all-namespaces",
            file=sys.stderr,
        )
        return 2
    from failover_operator import handlers  # registers the handlers with kopf

    del handlers
    kopf.configure(verbose=args.verbose)
    kopf.run(
        clusterwide=args.all_namespaces,
        namespaces=namespaces or (),
        liveness_endpoint=args.liveness,
        standalone=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
