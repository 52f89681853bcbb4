"""The operator's kopf settings that decide how long a deletion can be held."""

from __future__ import annotations

import logging

import kopf

from failover_operator import handlers


def configured() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    handlers.configure(settings=settings, logger=logging.getLogger("test"))
    return settings


def test_a_deletion_finding_a_timer_mid_call_looks_again_within_seconds_not_a_minute() -> None:
    background = configured().background
    # kopf's defaults: ten zero-time loop turns to finish, then a look every 60 s.
    assert background.cancellation_polling <= 2
    assert background.instant_exit_timeout is not None
    assert 0 < background.instant_exit_timeout <= 2


def test_kopf_keeps_progress_in_annotations_under_the_products_group() -> None:
    settings = configured()
    storage = settings.persistence.progress_storage
    assert isinstance(storage, kopf.AnnotationsProgressStorage)
    assert storage.prefix == "kafka-failover.github.io"
