"""Exceptions the Kubernetes testbed raises, so a broken harness is told apart from a failing test.

Every message names what failed and what to do about it; errors from a process carry its log tail.
"""


class KubeTestbedError(Exception):
    """Base class of every error raised by kube_testbed."""

    __test__ = False  # pytest must not collect this class as a test case


class BuildError(KubeTestbedError):
    """A binary could not be built: Go missing, a module not served, or the compiler failed."""


class ControlPlaneError(KubeTestbedError):
    """etcd, kube-apiserver or kube-controller-manager did not start or did not become ready."""


class KubectlError(KubeTestbedError):
    """A kubectl command exited with an error or did not finish in time."""
