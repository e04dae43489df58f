"""Links: `<base>/s/<sid>#w.<secret>` or `#r.<secret>` (docs/PROTOCOL.md §2)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from .errors import LinkError
from .wire import KEY_FP_SIZE, SECRET_SIZE, Role

SID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{16}")
_ROLE_LETTER: Final = {Role.READ_WRITE: "w", Role.READ_ONLY: "r"}
_LETTER_ROLE: Final = {v: k for k, v in _ROLE_LETTER.items()}


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_session_id(text: str) -> bool:
    return SID_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Link:
    base: str
    sid: str
    role: Role
    secret: bytes
    key_fp: bytes  # fingerprint of the sharer's signing key (§2.3): who may speak as the sharer

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Link(base={self.base!r}, sid={self.sid!r}, role={self.role.name})"

    @property
    def url(self) -> str:
        return format_link(self.base, self.sid, self.role, self.secret, self.key_fp)


def format_link(base: str, sid: str, role: Role, secret: bytes, key_fp: bytes) -> str:
    return f"{base.rstrip('/')}/s/{sid}#{_ROLE_LETTER[role]}.{b64u_encode(secret + key_fp)}"


def parse_link(url: str) -> Link:
    """Parse a link given by a user; LinkError with a sentence a person can act on."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise LinkError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LinkError("a termshare link starts with http:// or https:// and names a relay")
    match = re.fullmatch(r"(?P<prefix>.*)/s/(?P<sid>[^/]*)", parts.path)
    if match is None:
        raise LinkError("a termshare link ends in /s/<session id>#<key>")
    sid = match["sid"]
    if not is_session_id(sid):
        raise LinkError(f"{sid!r} is not a session id (16 characters of A-Z a-z 0-9 _ -)")
    fragment = parts.fragment
    if not fragment:
        raise LinkError("the link has no key: the part after '#' is missing (was the link cut short?)")
    letter, dot, encoded = fragment.partition(".")
    role = _LETTER_ROLE.get(letter)
    if role is None or not dot:
        raise LinkError("the key after '#' must start with 'w.' (read-write) or 'r.' (read-only)")
    try:
        key = b64u_decode(encoded)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != SECRET_SIZE + KEY_FP_SIZE:
        raise LinkError("the key after '#' is damaged: it must be 43 characters of base64url")
    base = f"{parts.scheme}://{parts.netloc}{match['prefix']}"
    return Link(base, sid, role, key[:SECRET_SIZE], key[SECRET_SIZE:])
