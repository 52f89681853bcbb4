"""The in-flight table: responses must answer the oldest request, in order."""

from __future__ import annotations

import pytest

from failover_gateway.pump.inflight import InFlightTable, OutOfSyncResponse


def test_responses_pop_requests_in_order() -> None:
    table = InFlightTable()
    table.sent(1, 3, 12)
    table.sent(2, 0, 9)
    assert table.answered(1).api_key == 3
    assert table.answered(2).api_version == 9
    assert len(table) == 0


def test_a_response_for_another_request_is_out_of_sync() -> None:
    table = InFlightTable()
    table.sent(1, 3, 12)
    with pytest.raises(OutOfSyncResponse, match="oldest request in flight has 1"):
        table.answered(2)


def test_a_response_with_nothing_in_flight_is_out_of_sync() -> None:
    with pytest.raises(OutOfSyncResponse, match="no request is in flight"):
        InFlightTable().answered(7)
