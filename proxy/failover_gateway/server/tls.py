"""TLS contexts for the three places the gateway speaks TLS: to brokers, to clients, for admins.

Why it exists: material comes as PEM files or PKCS#12 bundles (Kubernetes Secrets usually hold
PEM; many teams have .p12 files), and Python's ``ssl`` reads certificate chains from files only.
PKCS#12 is unpacked with ``cryptography`` into a private temporary folder that is removed as soon
as the context has loaded it. Broker certificates are verified, host names included, unless the
cluster sets ``ssl.endpoint.identification.algorithm`` to empty. ``cryptography`` is imported
only when a PKCS#12 file is read: importing it costs the process about 14 MiB of memory, which a
gateway without PKCS#12 material should not carry.
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from failover_gateway.config_security import AdminTls, ListenerTls, TlsFiles

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.serialization import pkcs12


class TlsSetupError(Exception):
    """TLS material could not be loaded; names the file, never a password."""


def _password(value: str | None) -> bytes | None:
    return value.encode() if value else None


def _pkcs12(path: Path, password: str | None) -> pkcs12.PKCS12KeyAndCertificates:
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        return pkcs12.load_pkcs12(path.read_bytes(), _password(password))
    except (ValueError, OSError) as error:
        raise TlsSetupError(
            f"cannot read PKCS#12 file {path} (wrong password or not "
            f"PKCS#12): {type(error).__name__}"
        ) from None


def _pem_certificates(bundle: pkcs12.PKCS12KeyAndCertificates) -> str:
    from cryptography.hazmat.primitives import serialization

    certificates = [bundle.cert.certificate] if bundle.cert else []
    certificates += [c.certificate for c in bundle.additional_certs]
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


@contextlib.contextmanager
def _unpacked_keystore(path: Path, password: str | None) -> Iterator[tuple[Path, Path]]:
    from cryptography.hazmat.primitives import serialization

    bundle = _pkcs12(path, password)
    if bundle.key is None or bundle.cert is None:
        raise TlsSetupError(f"PKCS#12 file {path} holds no private key and certificate")
    with tempfile.TemporaryDirectory(prefix="kfo-tls-") as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert.write_text(_pem_certificates(bundle))
        key.touch(mode=0o600)
        key.write_bytes(
            bundle.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        yield cert, key


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path, password: str | None) -> None:
    try:
        context.load_cert_chain(cert, key, password=password)
    except (ssl.SSLError, OSError) as error:
        raise TlsSetupError(
            f"cannot load certificate {cert} with key {key}: "
            f"{getattr(error, 'reason', None) or error.__class__.__name__}"
        ) from None


def upstream_context(files: TlsFiles) -> ssl.SSLContext:
    """Client-side context for one cluster."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = files.verify_hostname
    if files.ca is not None and files.ca_type == "PKCS12":
        bundle = _pkcs12(files.ca, files.ca_password)
        context.load_verify_locations(cadata=_pem_certificates(bundle))
    elif files.ca is not None:
        try:
            context.load_verify_locations(cafile=files.ca)
        except ssl.SSLError:
            raise TlsSetupError(f"cannot read CA certificates from {files.ca}") from None
    if files.keystore is not None:
        with _unpacked_keystore(files.keystore, files.keystore_password) as (cert, key):
            _load_chain(context, cert, key, None)
    elif files.certificate is not None and files.key is not None:
        _load_chain(context, files.certificate, files.key, files.key_password)
    return context


def listener_context(tls: ListenerTls) -> ssl.SSLContext:
    """Server-side context for clients; checks client certificates when asked to (mTLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, tls.certificate, tls.key, tls.key_password)
    if tls.client_auth != "none" and tls.client_ca is not None:
        context.load_verify_locations(cafile=tls.client_ca)
        context.verify_mode = (
            ssl.CERT_REQUIRED if tls.client_auth == "required" else ssl.CERT_OPTIONAL
        )
    return context


def admin_context(tls: AdminTls) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, tls.certificate, tls.key, None)
    return context
