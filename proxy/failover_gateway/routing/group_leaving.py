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

A member it left is dead on both clusters (the old one was told, the new one never knew it), so
its next Heartbeat or SyncGroup is answered by the gateway with REBALANCE_IN_PROGRESS, the
broker's own "rejoin now" (:class:`LeftMembers`), and its JoinGroup goes on with the member id
taken out, so the new cluster hands it a fresh one (KIP-394) in one round trip. Pods share no
state, and a client's next connection may land on another pod, which never saw the member: for
:data:`SWITCH_GRACE_SECONDS` after its own switch a pod also turns the new cluster's
UNKNOWN_MEMBER_ID answer to a Heartbeat or SyncGroup into REBALANCE_IN_PROGRESS. The new cluster
would have said UNKNOWN_MEMBER_ID, which every client survives, but franz-go counts it as an
error of its group session, and those errors only reset on a clean rebalance: with one per switch
its rejoin back-off grew 250 ms, 500 ms, 1 s ... up to 5 s per switch, measured
(``bench/switch_latency.py``, franz-go 1.22). A rebalance is not an error for any client.

Static members (``group.instance.id``) are left alone: their next join under the same instance id
replaces the old member at once, and a LeaveGroup would end a membership the client means to keep.
KIP-848 members (ConsumerGroupHeartbeat) never wait for others to join, so they need nothing.
Pure: frames in, frames out.
"""

from __future__ import annotations

from collections import OrderedDict

from failover_gateway.codec import headers, schema, specs
from failover_gateway.codec.primitives import Buffer

JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
TRACKED = frozenset({JOIN_GROUP, HEARTBEAT, SYNC_GROUP})
LEAVE_VERSION = 3  # the first with member identities; every Kafka from 2.4 to 4.x takes it
LEAVE_CORRELATION_ID = 0x7FFF_FFF0  # its answer is never read: the connection is going
CLIENT_ID = "kafka-failover-gateway"
UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS = 25, 27
REJOIN_ANSWERED = frozenset({HEARTBEAT, SYNC_GROUP})
SWITCH_GRACE_SECONDS = 120.0
"""After a pod's switch, an UNKNOWN_MEMBER_ID answer to a Heartbeat or SyncGroup through it
becomes REBALANCE_IN_PROGRESS for this long: the member may have been left by another pod."""
LEFT_MEMBER_SECONDS = 600.0
"""How long a left member's requests are answered: its client notices within one heartbeat."""
LEFT_MEMBERS_KEPT = 50_000
"""At most this many left members remembered (the oldest forgotten first)."""


class LeftMembers:
    """The (group, member id) pairs this gateway left at switches, each for
    :data:`LEFT_MEMBER_SECONDS`. Per pod: another pod covers them only through its
    :data:`SWITCH_GRACE_SECONDS` window."""

    def __init__(
        self, *, seconds: float = LEFT_MEMBER_SECONDS, kept: int = LEFT_MEMBERS_KEPT
    ) -> None:
        self._seconds = seconds
        self._kept = kept
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def left(self, group: str, member_id: str, now: float) -> None:
        key = (group, member_id)
        self._until.pop(key, None)
        self._until[key] = now + self._seconds
        while len(self._until) > self._kept:
            self._until.popitem(last=False)

    def gone(self, group: str, member_id: str, now: float) -> bool:
        """Whether ``member_id`` of ``group`` is one this gateway left (and not long ago)."""
        self._forget_expired(now)
        return (group, member_id) in self._until

    def _forget_expired(self, now: float) -> None:
        while self._until:
            key, until = next(iter(self._until.items()))
            if until > now:
                return
            del self._until[key]


def membership(api_key: int, frame: Buffer) -> tuple[str, str] | None:
    """(group, member id) of a dynamic member's JoinGroup, SyncGroup or Heartbeat request frame
    (size prefix included); None for a static member. The member id is "" in a first join."""
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(api_key)
    assert spec is not None
    values, _ = schema.decode_tolerant(spec, header.api_version, view[header.body_offset :])
    if values.get("GroupInstanceId"):
        return None
    return str(values["GroupId"]), str(values.get("MemberId") or "")


def joined_member(api_version: int, frame: Buffer) -> str:
    """The member id in a JoinGroup response frame (size prefix included): the one a first join
    is given with MEMBER_ID_REQUIRED, or the member's own after a join; "" when there is none."""
    view = memoryview(frame)[4:]
    header = headers.parse_response_header(view, JOIN_GROUP, api_version)
    spec = specs.response(JOIN_GROUP)
    assert spec is not None
    values, _ = schema.decode_tolerant(spec, api_version, view[header.body_offset :])
    return str(values.get("MemberId") or "")


def rejoin_answer(api_key: int, frame: Buffer) -> bytes:
    """The whole response frame to a Heartbeat or SyncGroup request frame (size prefix included)
    that tells the member to rejoin: REBALANCE_IN_PROGRESS, as a coordinator says it."""
    header = headers.parse_request_header(memoryview(frame)[4:])
    return rejoin_answer_to(api_key, header.api_version, header.correlation_id)


def rejoin_answer_to(api_key: int, api_version: int, correlation_id: int) -> bytes:
    """:func:`rejoin_answer` for a request known by its api key, version and correlation id."""
    spec = specs.response(api_key)
    assert spec is not None and api_key in REJOIN_ANSWERED
    values = {
        "ThrottleTimeMs": 0,
        "ErrorCode": REBALANCE_IN_PROGRESS,
        "ProtocolType": None,
        "ProtocolName": None,
        "Assignment": b"",
    }
    body = schema.encode(spec, api_version, values)
    head = headers.encode_response_header(correlation_id, api_key, api_version)
    return (len(head) + len(body)).to_bytes(4, "big") + head + body


def member_unknown(api_key: int, api_version: int, frame: Buffer) -> bool:
    """Whether a Heartbeat or SyncGroup response frame (size prefix included) is the
    coordinator's UNKNOWN_MEMBER_ID."""
    view = memoryview(frame)[4:]
    header = headers.parse_response_header(view, api_key, api_version)
    spec = specs.response(api_key)
    assert spec is not None
    values, _ = schema.decode_tolerant(spec, api_version, view[header.body_offset :])
    return values.get("ErrorCode") == UNKNOWN_MEMBER_ID


def without_member_id(frame: Buffer) -> bytes:
    """A JoinGroup request frame (size prefix included) with its member id emptied: a first join,
    which the coordinator answers with a member id of its own."""
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(JOIN_GROUP)
    assert spec is not None
    values = schema.decode(spec, header.api_version, view[header.body_offset :])
    body = schema.encode(spec, header.api_version, {**values, "MemberId": ""})
    head = bytes(view[: header.body_offset])
    return (len(head) + len(body)).to_bytes(4, "big") + head + body


def leave_body(group: str, member_id: str) -> dict[str, object]:
    """The LeaveGroup (``LEAVE_VERSION``) request body that takes one dynamic member out of
    ``group``, as the member would on a clean close."""
    return {"GroupId": group, "Members": [{"MemberId": member_id, "GroupInstanceId": None}]}


def leave_request(group: str, member_id: str) -> bytes:
    """A whole LeaveGroup request frame (size prefix included) for one dynamic member."""
    spec = specs.request(LEAVE_GROUP)
    assert spec is not None
    body = schema.encode(spec, LEAVE_VERSION, leave_body(group, member_id))
    head = headers.encode_request_header(
        LEAVE_GROUP, LEAVE_VERSION, LEAVE_CORRELATION_ID, CLIENT_ID
    )
    return (len(head) + len(body)).to_bytes(4, "big") + head + body
