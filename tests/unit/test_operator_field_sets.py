"""Adopting fields a release before server-side apply wrote: the union of two field sets."""

from __future__ import annotations

from failover_operator import kube_objects


def test_merged_field_sets_keep_every_field_of_both() -> None:
    left = {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}
    right = {"f:data": {"f:b": {}}, "f:spec": {}}
    assert kube_objects.merge_field_sets(left, right) == {
        "f:data": {"f:a": {}, "f:b": {}},
        "f:metadata": {"f:labels": {"f:x": {}}},
        "f:spec": {},
    }
