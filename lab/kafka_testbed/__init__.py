"""A Kafka lab without Docker: Apache Kafka (KRaft) from Maven Central jars, Tansu, Java tools.

Used by the test suite (through pytest fixtures), ``make demo`` and the benchmarks.
"""
