"""The kafka-proxy benchmark peer: without a binary it names why and how to enable the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_testbed import peers


def test_kafka_proxy_without_a_binary_is_reported_unavailable_naming_the_403_and_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-kafka-proxy"
    monkeypatch.setenv("KAFKA_PROXY_BIN", str(missing))
    with (
        pytest.raises(peers.PeerUnavailable) as raised,
        peers.start_peer("kafka-proxy", "127.0.0.1:1", tmp_path / "peer"),
    ):
        pass
    message = str(raised.value)
    assert f"KAFKA_PROXY_BIN={missing}" in message
    assert "github.com/grepplabs/kafka-proxy is not served by the Go module proxy" in message
    assert "403" in message
    assert "KAFKA_PROXY_BIN=/path/to/kafka-proxy enables the row" in message
