"""Decisions about where bytes go and what clients may see: node ports, rewrites, version policy."""
