"""Pinned versions of everything the lab runs, in one place so an upgrade is a one-line change.

The Maven poms under ``maven/`` receive these values on the command line; their own defaults
are only there so the poms stay valid on their own.
"""

from typing import Final

KAFKA_VERSION: Final = "4.1.1"
"""Apache Kafka release for brokers, tools, MirrorMaker 2 and the current Java client."""

NEWEST_KAFKA_VERSION: Final = "4.4.0"
"""The newest Apache Kafka release Maven Central serves: its brokers and clients also run in the
suite, so a new broker's protocol reaches the gateway's tests before it reaches users."""

OLD_CLIENTS_VERSION: Final = "3.7.2"
"""Newest Java client without KIP-899 rebootstrap (added in 3.8), for client-version tests."""

MINIMUM_JAVA_MAJOR: Final = 17
"""Kafka 4.x brokers and tools need Java 17 or newer."""
