"""Parsing what Kafka's console tools print, and the arguments they are given."""

from kafka_testbed import tooling


def test_console_consumer_lines_become_key_value_records() -> None:
    stdout = "k1\tv1\nk2\tvalue\twith tab\nnoise without separator\n\n"

    assert tooling.parse_keyed_lines(stdout) == [("k1", "v1"), ("k2", "value\twith tab")]


def test_client_properties_are_passed_one_option_each() -> None:
    assert tooling._repeat("--producer-property", {"acks": "all", "linger.ms": "5"}) == [
        "--producer-property",
        "acks=all",
        "--producer-property",
        "linger.ms=5",
    ]


def test_tools_log_warnings_to_stderr_only() -> None:
    text = tooling._tools_log4j_config().read_text()

    assert "SYSTEM_ERR" in text
    assert "rootLogger.level = WARN" in text
