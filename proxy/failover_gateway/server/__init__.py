"""The running gateway: listeners, the switch, the admin API, health probes and metrics."""
