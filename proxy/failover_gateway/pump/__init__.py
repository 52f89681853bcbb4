"""Per-connection forwarding between one client and one upstream broker, with flow control."""
