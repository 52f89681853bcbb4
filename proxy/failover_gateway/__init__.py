"""The kafka-failover gateway: a Kafka wire-protocol proxy that routes every client to the active
physical cluster and moves them all at once when told to switch.

Layers (checked by import-linter): ``codec`` (pure bytes <-> messages) < ``routing`` (address
virtualisation, version policy) < ``pump`` (per-connection forwarding) < ``server`` (listeners,
switch, admin API). ``config`` is the public, typed configuration model shared with the operator.
"""
