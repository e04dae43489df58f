"""Relay addresses: turning what the user typed into the links' base and websocket URLs."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from .protocol.errors import TermshareError


class RelayAddressError(TermshareError):
    pass


def relay_base(relay: str | None, host: str | None, port: int | None) -> str:
    """`http(s)://host[:port][/prefix]` without a trailing slash."""
    if relay is None:
        return f"http://{host or '127.0.0.1'}:{port or 8000}"
    text = relay.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise RelayAddressError(f"{relay!r} is not a relay URL (expected https://host[:port][/prefix])")
    if parts.query or parts.fragment:
        raise RelayAddressError(f"{relay!r}: a relay URL has no query or fragment")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise RelayAddressError(f"{relay!r} has an invalid port") from None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def websocket_url(base: str, role: str, sid: str) -> str:
    """`role` is "share" or "view" (docs/PROTOCOL.md §2.4)."""
    scheme, rest = base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/{role}/{sid}"


def ssl_context(base: str, cafile: str | None) -> ssl.SSLContext | None:
    """Certificates are always verified (TermPair does not); `cafile` adds a private CA."""
    if not base.startswith("https://"):
        return None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise RelayAddressError(f"cannot load CA file {cafile!r}: {exc}") from None
