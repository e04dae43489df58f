"""Relay addresses: what the user typed into the links' base and websocket URLs, and which proxy reaches them."""

from __future__ import annotations

import os
import ssl
import sys
from typing import Any
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


def proxy_for(host: str, port: int, secure: bool) -> str | None:
    """The proxy the environment names for this relay (urllib's rules, websockets' order of
    schemes), or None. urllib.request is imported only when a *_proxy variable is set (or on
    macOS, where proxies also come from the system configuration)."""
    if sys.platform != "darwin" and not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    import urllib.request

    if urllib.request.proxy_bypass(f"{host}:{port}"):
        return None
    proxies: dict[str, Any] = urllib.request.getproxies()
    for scheme in (("wss", "socks", "https") if secure else ("ws", "socks", "https", "http")):
        proxy = proxies.get(scheme)
        if proxy:
            return "socks5h://" + proxy[7:] if scheme == "socks" and proxy.startswith("http://") else str(proxy)
    return None
