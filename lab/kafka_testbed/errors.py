"""Exceptions the lab raises, so callers can tell a lab problem from a failing product test.

Every message says what went wrong and, where the harness can know, what to do about it; errors
from a process that died carry the tail of its log.
"""


class TestbedError(Exception):
    """Base class of every error raised by kafka_testbed."""

    __test__ = False  # pytest must not collect this class as a test case


class FetchError(TestbedError):
    """The jars could not be resolved or downloaded (Maven, Java or network missing)."""


class ClusterStartError(TestbedError):
    """A cluster did not become ready: a process died, a port was taken, or a wait timed out."""


class PortInUseError(ClusterStartError):
    """A port the caller asked for is already bound by someone else."""


class ToolError(TestbedError):
    """A Java command-line tool exited with an error or did not finish in time."""
