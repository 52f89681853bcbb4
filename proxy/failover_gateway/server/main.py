"""Command line entry point: ``kafka-failover-gateway --config PATH``.

Why it exists: the process boundary. Configuration and credentials are read and validated here,
before anything listens; any error exits non-zero with a message naming the key, the bad value
and what is valid. SIGTERM and SIGINT trigger the scripted shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from failover_gateway.config import (
    AdminCredentials,
    ConfigError,
    GatewayConfig,
    admin_credentials_from_env,
    load_config,
)
from failover_gateway.server import active_file, security_setup
from failover_gateway.server.runtime import GatewayRuntime

log = logging.getLogger("failover_gateway")
audit = logging.getLogger("failover_gateway.audit")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kafka-failover-gateway",
        description="Kafka disaster-recovery gateway: routes every client to the active cluster.",
    )
    parser.add_argument("--config", required=True, type=Path, help="path to the YAML config")
    return parser.parse_args(argv)


def _initial_active(config: GatewayConfig) -> tuple[GatewayConfig, int]:
    """The active file, when present, wins over ``gateway.active``: it is the live value."""
    path = config.gateway.active_file
    if path is None:
        return config, 0
    try:
        choice = active_file.read_active(path)
    except active_file.ActiveFileError as error:
        raise ConfigError(f"gateway.activeFile: {error}") from None
    if choice is None:
        return config, 0
    if choice.cluster not in config.clusters:
        raise ConfigError(
            f"gateway.activeFile {path} names cluster {choice.cluster!r}; valid: "
            f"{', '.join(config.clusters)}"
        )
    settings = config.gateway.model_copy(update={"active": choice.cluster})
    return config.model_copy(update={"gateway": settings}), choice.epoch or 0


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        log.info("uvloop not available; using the default asyncio event loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _log_tls_refusals(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A refused TLS handshake (wrong, expired or missing client certificate) never reaches a
    connection object; asyncio reports it here. Log it with the source address, no secret."""
    error = context.get("exception")
    if isinstance(error, ssl.SSLError | ConnectionResetError):
        transport = context.get("transport")
        peer = transport.get_extra_info("peername") if transport is not None else None
        audit.warning(
            "TLS handshake refused client=%s reason=%s",
            _peer(peer),
            getattr(error, "reason", None) or error,
        )
        return
    loop.default_exception_handler(context)


def _peer(peer: object) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


async def serve(
    config: GatewayConfig,
    credentials: AdminCredentials,
    epoch: int = 0,
    security: security_setup.GatewaySecurity | None = None,
) -> None:
    runtime = GatewayRuntime(config, credentials, epoch=epoch, security=security)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_log_tls_refusals)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    log.info("gateway ready: active cluster %s, epoch %d", config.gateway.active, epoch)
    await stop.wait()
    log.info("shutting down")
    await runtime.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config, epoch = _initial_active(load_config(args.config))
        credentials = admin_credentials_from_env()
        security = security_setup.build(config)
    except (ConfigError, security_setup.SecuritySetupError) as error:
        print(f"kafka-failover-gateway: configuration error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.gateway.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _install_uvloop()
    try:
        asyncio.run(serve(config, credentials, epoch, security))
    except OSError as error:
        print(f"kafka-failover-gateway: cannot listen: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
