"""Authentication without I/O: SASL mechanisms (both ends), the user store, JAAS strings and
certificate principal mapping. Pure, so every exchange is tested against RFC vectors."""
