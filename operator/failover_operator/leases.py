"""Reading and writing the operator's one Lease through the official client, synchronously.

Why it exists: leader election needs three calls (read, create, conditional replace) with bounded
time, and their failures sorted into "someone else wrote first" (409) and everything else. They
run in a worker thread or the renewal thread, never on the kopf event loop. The client has its
own configuration, without urllib3's retries: a renewal that retried a timed-out request three
times could outlive the renew deadline it is racing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, cast

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from failover_operator.leadership import LEASE_NAME, LeadershipError, Lease

NOT_FOUND, CONFLICT = 404, 409


class LeaseCallError(LeadershipError):
    """A call on the Lease failed; the message names the Lease and the API's reason."""


class Conflict(LeaseCallError):
    """Someone else wrote the Lease first (409): the resourceVersion we carried is stale."""


def connect() -> Any:
    """A CoordinationV1Api from the in-cluster service account, else ``$KUBECONFIG``."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    configuration.retries = 0
    return kubernetes.client.CoordinationV1Api(kubernetes.client.ApiClient(configuration))


class LeaseClient:
    """The Lease ``LEASE_NAME`` in one namespace; every call takes a timeout in seconds."""

    def __init__(self, api: Any, namespace: str) -> None:
        self._api = api
        self.namespace = namespace

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{LEASE_NAME}"

    def read(self, timeout: float) -> Lease | None:
        try:
            answer = self._api.read_namespaced_lease(
                LEASE_NAME, self.namespace, _preload_content=False, _request_timeout=(timeout,) * 2
            )
        except ApiException as error:
            if error.status == NOT_FOUND:
                return None
            raise self._failed("reading", error) from error
        except urllib3.exceptions.HTTPError as error:
            raise self._failed("reading", error) from error
        return _parsed(answer)

    def create(self, lease: Lease, timeout: float) -> Lease:
        return self._write("creating", self._api.create_namespaced_lease, lease, timeout)

    def replace(self, lease: Lease, timeout: float) -> Lease:
        """Conditional on ``lease``'s resourceVersion: :class:`Conflict` if it changed since."""
        replace = functools.partial(self._api.replace_namespaced_lease, LEASE_NAME)
        return self._write("updating", replace, lease, timeout)

    def _write(self, doing: str, call: Callable[..., Any], lease: Lease, timeout: float) -> Lease:
        try:
            answer = call(
                self.namespace, dict(lease), _preload_content=False, _request_timeout=(timeout,) * 2
            )
        except ApiException as error:
            if error.status == CONFLICT:
                raise Conflict(f"{doing} {self.where}: someone else wrote it first") from error
            raise self._failed(doing, error) from error
        except urllib3.exceptions.HTTPError as error:
            raise self._failed(doing, error) from error
        return _parsed(answer)

    def _failed(self, doing: str, error: Exception) -> LeaseCallError:
        if isinstance(error, ApiException):
            return LeaseCallError(f"{doing} {self.where}: {error.status} {_message(error)}")
        return LeaseCallError(f"{doing} {self.where}: {type(error).__name__}: {error}")


def _parsed(answer: Any) -> Lease:
    return cast(Lease, json.loads(answer.data))


def _message(error: ApiException) -> str:
    """The API server's own message (it names the missing permission), else the HTTP reason."""
    try:
        return str(json.loads(error.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.reason)
