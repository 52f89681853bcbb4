"""Pure Kafka protocol codec: bytes in, typed values out, no I/O, driven by Kafka's JSON specs."""
