"""``kafka-failover-users``: maintain the gateway's client user store file.

Why it exists: the store holds salted credentials only, so they must be computed, not typed.
``add`` reads the password from standard input (never from the command line, where it would land
in shell history and process listings) and writes or updates the user's entries.

    printf '%s' "$PASSWORD" | kafka-failover-users add --file users.yaml orders-app \\
        --mechanism SCRAM-SHA-512 --mechanism PLAIN
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from failover_gateway.auth import users


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kafka-failover-users", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add or update a user (password read from stdin)")
    add.add_argument("--file", type=Path, required=True, help="user store YAML file")
    add.add_argument("user")
    add.add_argument(
        "--mechanism",
        action="append",
        choices=users.MECHANISMS,
        help="repeatable; default: SCRAM-SHA-512",
    )
    remove = commands.add_parser("remove", help="remove a user")
    remove.add_argument("--file", type=Path, required=True)
    remove.add_argument("user")
    return parser.parse_args(argv)


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"users": {}}
    document = yaml.safe_load(path.read_text()) or {"users": {}}
    users.parse(document, str(path))  # refuse to extend a broken store
    return dict(document)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        document = _read(args.file)
    except users.UserStoreError as error:
        print(f"kafka-failover-users: {error}", file=sys.stderr)
        return 2
    if args.command == "remove":
        document["users"].pop(args.user, None)
    else:
        password = sys.stdin.read().rstrip("\n")
        if not password:
            print("kafka-failover-users: no password on standard input", file=sys.stderr)
            return 2
        mechanisms = args.mechanism or ["SCRAM-SHA-512"]
        document["users"][args.user] = {m: users.entry_for(m, password) for m in mechanisms}
    args.file.write_text(yaml.safe_dump(document, sort_keys=True))
    args.file.chmod(0o600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
