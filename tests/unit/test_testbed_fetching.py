"""Fetching jars: a complete cache is a no-op, and every failure says what to do."""

import json
from pathlib import Path

import pytest

from kafka_testbed import fetching, versions
from kafka_testbed.errors import FetchError

PROPERTIES = {"kafka.version": "9.9.9"}


@pytest.fixture
def pom(tmp_path: Path) -> Path:
    path = tmp_path / "pom.xml"
    path.write_text("<project/>")
    return path


def complete_cache(target: Path, pom: Path, properties: dict[str, str] = PROPERTIES) -> None:
    target.mkdir(parents=True)
    (target / "a.jar").write_bytes(b"jar")
    marker = {"fingerprint": fetching._fingerprint(pom, properties), "jars": ["a.jar"]}
    (target / fetching.MARKER_NAME).write_text(json.dumps(marker))


def test_a_cache_with_a_matching_marker_and_all_jars_is_complete(tmp_path: Path, pom: Path) -> None:
    complete_cache(tmp_path / "jars", pom)

    assert fetching.is_complete(tmp_path / "jars", pom, PROPERTIES)


def test_a_cache_without_marker_is_incomplete(tmp_path: Path, pom: Path) -> None:
    (tmp_path / "jars").mkdir()

    assert not fetching.is_complete(tmp_path / "jars", pom, PROPERTIES)


def test_a_cache_missing_a_listed_jar_is_incomplete(tmp_path: Path, pom: Path) -> None:
    complete_cache(tmp_path / "jars", pom)
    (tmp_path / "jars" / "a.jar").unlink()

    assert not fetching.is_complete(tmp_path / "jars", pom, PROPERTIES)


def test_changing_the_pom_or_the_version_invalidates_the_cache(tmp_path: Path, pom: Path) -> None:
    complete_cache(tmp_path / "jars", pom)

    assert not fetching.is_complete(tmp_path / "jars", pom, {"kafka.version": "1.0.0"})
    pom.write_text("<project><!-- changed --></project>")
    assert not fetching.is_complete(tmp_path / "jars", pom, PROPERTIES)


def test_fetching_into_a_complete_cache_needs_neither_maven_nor_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fetching.CACHE_ENV_VAR, str(tmp_path))
    target = fetching.kafka_jars_dir("9.9.9")
    complete_cache(target, fetching.KAFKA_POM, fetching.kafka_pom_properties("9.9.9"))
    monkeypatch.setenv("PATH", "")

    assert fetching.fetch_kafka_jars("9.9.9") == target


def test_fetching_without_maven_says_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fetching.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setenv("PATH", "")

    with pytest.raises(FetchError, match=r"Maven \(`mvn`\) is not on PATH.*Install Maven"):
        fetching.fetch_kafka_jars("9.9.9")


def test_unreachable_maven_central_is_reported_as_a_network_problem(pom: Path) -> None:
    output = (
        "[ERROR] Failed to execute goal ... Could not transfer artifact "
        "org.apache.kafka:kafka_2.13:pom:4.1.1 from/to central: repo.maven.apache.org: "
        "Unknown host repo.maven.apache.org"
    )

    message = fetching.explain_maven_failure(pom, PROPERTIES, output)

    assert message.startswith("Maven could not reach Maven Central")
    assert "settings.xml" in message
    assert "Unknown host" in message


def test_a_version_missing_from_maven_central_points_at_the_pinned_versions(pom: Path) -> None:
    output = "[ERROR] Could not find artifact org.apache.kafka:kafka_2.13:jar:9.9.9 in central"

    message = fetching.explain_maven_failure(pom, PROPERTIES, output)

    assert "kafka.version=9.9.9" in message
    assert "versions.py" in message


def test_the_maven_command_copies_runtime_dependencies_with_the_pinned_versions(
    pom: Path,
) -> None:
    command = fetching.maven_command("mvn", pom, PROPERTIES, Path("/out"))

    assert command[command.index("--file") + 1] == str(pom)
    assert f"{fetching.DEPENDENCY_PLUGIN}:copy-dependencies" in command
    assert "-DoutputDirectory=/out" in command
    assert "-Dkafka.version=9.9.9" in command
    assert "--batch-mode" in command


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_the_java_major_version_is_read_from_java_version_output(
    output: str, major: int | None
) -> None:
    assert fetching.java_major_version(output) == major


def test_the_cache_lives_in_the_users_cache_directory_shared_by_clones_unless_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(fetching.CACHE_ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert fetching.cache_root() == Path.home() / ".cache" / "kafka-failover"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fetching.cache_root() == tmp_path / "xdg" / "kafka-failover"

    monkeypatch.setenv(fetching.CACHE_ENV_VAR, str(tmp_path))
    assert fetching.kafka_jars_dir("4.1.1") == tmp_path / "jars" / "kafka-4.1.1"
    assert fetching.old_clients_dir("3.7.2") == tmp_path / "jars" / "kafka-clients-3.7.2"


def test_a_classpath_names_every_jar_of_the_folder() -> None:
    assert fetching.classpath(Path("/c/jars")) == "/c/jars/*"


def test_only_the_pinned_release_is_fetched_with_mirror_maker() -> None:
    assert "without.mirror.maker" not in fetching.kafka_pom_properties(versions.KAFKA_VERSION)
    assert fetching.kafka_pom_properties(versions.NEWEST_KAFKA_VERSION) == {
        "kafka.version": versions.NEWEST_KAFKA_VERSION,
        "without.mirror.maker": "true",
    }
