"""The user store tool writes salted entries the gateway accepts, and never takes a password
from the command line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from failover_gateway.auth import users
from failover_gateway.server import user_admin


def test_adding_a_user_writes_entries_the_store_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users.yaml"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pw\n"))
    assert (
        user_admin.main(
            [
                "add",
                "--file",
                str(path),
                "app",
                "--mechanism",
                "PLAIN",
                "--mechanism",
                "SCRAM-SHA-256",
            ]
        )
        == 0
    )
    assert "s3cret-pw" not in path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    store = users.load(path)
    assert store.check_plain("app", "s3cret-pw")
    assert store.scram_credential("SCRAM-SHA-256", "app") is not None


def test_an_empty_password_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert user_admin.main(["add", "--file", str(tmp_path / "u.yaml"), "app"]) == 2


def test_removing_a_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "users.yaml"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw"))
    user_admin.main(["add", "--file", str(path), "app"])
    assert user_admin.main(["remove", "--file", str(path), "app"]) == 0
    assert users.load(path).user_count == 0
