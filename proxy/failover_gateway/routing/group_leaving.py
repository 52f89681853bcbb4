"""Leaving a consumer group on the old cluster for a member a switch took away from it.

Why it exists: a switch moves or closes a consumer's connection to its group coordinator; the
consumer rejoins on the new cluster under a new member id, but the old cluster still counts its
old member until ``session.timeout.ms`` passes (45 s by default), because nobody told it the
member left. Should the client come back to that cluster within that time (a switch back, a
mistaken switch undone), its JoinGroup waits for the ghost — its own former self — to rejoin or
expire: measured 25-45 s without a record read (``bench/switch_latency.py``, librdkafka). So the
gateway leaves for it: it remembers the group and member id of each classic-protocol member from
the JoinGroup (a rejoin, or the second join KIP-394 asks for), SyncGroup and Heartbeat requests on
a connection, and at a switch sends the old coordinator a
LeaveGroup for them, as the client itself would on a clean close.

Static members (``group.instance.id``) are left alone: their next join under the same instance id
replaces the old member at once, and a LeaveGroup would end a membership the client means to keep.
KIP-848 members (ConsumerGroupHeartbeat) never wait for others to join, so they need nothing.
Pure: frames in, frames out.
"""

from __future__ import annotations

from failover_gateway.codec import headers, schema, specs
from failover_gateway.codec.primitives import Buffer

JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
TRACKED = frozenset({JOIN_GROUP, HEARTBEAT, SYNC_GROUP})
LEAVE_VERSION = 3  # the first with member identities; every Kafka from 2.4 to 4.x takes it
LEAVE_CORRELATION_ID = 0x7FFF_FFF0  # its answer is never read: the connection is going
CLIENT_ID = "kafka-failover-gateway"


def membership(api_key: int, frame: Buffer) -> tuple[str, str] | None:
    """(group, member id) of a dynamic member's JoinGroup, SyncGroup or Heartbeat request frame
    (size prefix included); None for a static member, or a request without a member id."""
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(api_key)
    assert spec is not None
    values, _ = schema.decode_tolerant(spec, header.api_version, view[header.body_offset :])
    member = values.get("MemberId") or ""
    if not member or values.get("GroupInstanceId"):
        return None
    return str(values["GroupId"]), str(member)


def leave_request(group: str, member_id: str) -> bytes:
    """A whole LeaveGroup request frame (size prefix included) for one dynamic member."""
    spec = specs.request(LEAVE_GROUP)
    assert spec is not None
    body = schema.encode(
        spec,
        LEAVE_VERSION,
        {"GroupId": group, "Members": [{"MemberId": member_id, "GroupInstanceId": None}]},
    )
    head = headers.encode_request_header(
        LEAVE_GROUP, LEAVE_VERSION, LEAVE_CORRELATION_ID, CLIENT_ID
    )
    return (len(head) + len(body)).to_bytes(4, "big") + head + body
