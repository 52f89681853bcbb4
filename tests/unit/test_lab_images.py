"""The image builder's decisions, without building: which engine, what a tag covers, clear refusals.

Why this module: ``make images`` must fail with a message a user can act on where no engine can
run, and a warm ``make test`` must find its images by content; both are pure decisions of
:mod:`kafka_testbed.images` (the builds themselves run in ``tests/integration/test_images.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_testbed import images


def test_without_docker_podman_or_root_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda tool: None)
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)

    with pytest.raises(images.ImagesUnavailable) as refused:
        images.engine()

    message = str(refused.value)
    assert "docker" in message and "podman" in message and "needs root" in message


def test_make_images_exits_2_with_the_reason_when_no_engine_can_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda tool: None)
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)

    assert images.main([]) == 2
    assert "make images:" in capsys.readouterr().err


def test_an_image_tag_changes_with_its_base_and_differs_between_images() -> None:
    gateway_tag = images.image_tag(images.GATEWAY, "base:a")

    assert images.image_tag(images.GATEWAY, "base:a") == gateway_tag
    assert images.image_tag(images.GATEWAY, "base:b") != gateway_tag
    assert images.image_tag(images.OPERATOR, "base:a") != gateway_tag


def test_the_content_hash_covers_names_and_bytes_and_skips_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "REPO", tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("one")
    first = images.content_hash(["src"])
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert images.content_hash(["src"]) == first
    (tmp_path / "src" / "a.py").write_text("two")
    assert images.content_hash(["src"]) != first


def test_the_gateway_image_hash_does_not_cover_the_operator_or_the_lab() -> None:
    assert not any(path.startswith(("operator", "lab", "tests")) for path in images.GATEWAY.inputs)
    assert "operator" in images.OPERATOR.inputs
