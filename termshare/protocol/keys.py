"""Key schedule, AEAD and signatures (docs/PROTOCOL.md §3). Every primitive comes from `cryptography`.

The relay never imports this module (checked by tests/test_layers.py).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .envelope import Header
from .errors import DecryptionError, HandshakeError, SequenceError
from .wire import KEY_FP_SIZE, KEY_SIZE, REKEY_FRAMES, SECRET_SIZE, Role

Rng = Callable[[int], bytes]

_NONCE: Final = struct.Struct(">III")
_ZERO_NONCE: Final = bytes(12)
GROUP_SIG_LABEL: Final = b"termshare/1 group"
WELCOME_SIG_LABEL: Final = b"termshare/1 welcome"


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def nonce(epoch: int, seq: int) -> bytes:
    return _NONCE.pack(epoch, 0, seq)


def derive_ro_secret(rw_secret: bytes, sid: str) -> bytes:
    return hkdf(rw_secret, sid.encode(), b"termshare/1 read-only", SECRET_SIZE)


def derive_psk(role: Role, secret: bytes, sid: str) -> bytes:
    """`secret` is rw_secret for READ_WRITE and ro_secret for READ_ONLY (§3)."""
    label = b"termshare/1 psk rw" if role is Role.READ_WRITE else b"termshare/1 psk ro"
    return hkdf(secret, sid.encode(), label, KEY_SIZE)


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The pre-shared keys one party can use. A read-only holder has no psk_rw."""

    sid: str
    psk_ro: bytes
    psk_rw: bytes | None

    @classmethod
    def from_secret(cls, sid: str, role: Role, secret: bytes) -> SessionKeys:
        if role is Role.READ_WRITE:
            ro = derive_ro_secret(secret, sid)
            return cls(sid, derive_psk(Role.READ_ONLY, ro, sid), derive_psk(Role.READ_WRITE, secret, sid))
        return cls(sid, derive_psk(Role.READ_ONLY, secret, sid), None)

    def psk(self, role: Role) -> bytes | None:
        return self.psk_rw if role is Role.READ_WRITE else self.psk_ro

    def __repr__(self) -> str:
        return f"SessionKeys(sid={self.sid!r})"


def new_x25519(rng: Rng) -> tuple[X25519PrivateKey, bytes]:
    private = X25519PrivateKey.from_private_bytes(rng(32))
    return private, private.public_key().public_bytes_raw()


def new_ed25519(rng: Rng) -> tuple[Ed25519PrivateKey, bytes]:
    private = Ed25519PrivateKey.from_private_bytes(rng(32))
    return private, private.public_key().public_bytes_raw()


def sign_key_fp(sid: str, public: bytes) -> bytes:
    """The fingerprint links carry, so a viewer accepts only the real sharer's key (§2.3)."""
    return hashlib.sha256(b"termshare/1 sharer key" + sid.encode() + public).digest()[:KEY_FP_SIZE]


def hello_key(psk: bytes, ev_public: bytes, sid: str) -> bytes:
    return hkdf(psk, ev_public, b"termshare/1 hello" + sid.encode(), KEY_SIZE)


def hello_tag(psk: bytes, sid: str, header: bytes, role: Role, ev_public: bytes) -> bytes:
    aad = sid.encode() + header + bytes((role,)) + ev_public
    return AESGCM(hello_key(psk, ev_public, sid)).encrypt(_ZERO_NONCE, b"", aad)


def check_hello_tag(psk: bytes, sid: str, header: bytes, role: Role, ev_public: bytes, tag: bytes) -> bool:
    aad = sid.encode() + header + bytes((role,)) + ev_public
    try:
        AESGCM(hello_key(psk, ev_public, sid)).decrypt(_ZERO_NONCE, tag, aad)
    except InvalidTag:
        return False
    return True


def x25519(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:  # all-zero result: a small-order point (§3.1 step 3)
        raise HandshakeError("the peer's ephemeral key is a small-order point") from None


def _handshake_names(sid: str, viewer_id: int, role: Role, ev_public: bytes, es_public: bytes) -> bytes:
    """What names one handshake, in both the channel's key derivation and WELCOME's signature."""
    return sid.encode() + struct.pack(">IB", viewer_id, role) + ev_public + es_public


def channel_chain_keys(
    dh: bytes, psk: bytes, sid: str, viewer_id: int, role: Role, ev_public: bytes, es_public: bytes
) -> tuple[bytes, bytes]:
    info = b"termshare/1 channel" + _handshake_names(sid, viewer_id, role, ev_public, es_public)
    okm = hkdf(dh, psk, info, 2 * KEY_SIZE)
    return okm[:KEY_SIZE], okm[KEY_SIZE:]


def traffic_key(chain_key: bytes, sid: str) -> bytes:
    return hkdf(chain_key, sid.encode(), b"termshare/1 key", KEY_SIZE)


def next_chain_key(chain_key: bytes, sid: str) -> bytes:
    return hkdf(chain_key, sid.encode(), b"termshare/1 ratchet", KEY_SIZE)


def group_direct_key(chain_key: bytes, sid: str) -> bytes:
    """A channel's key for GROUP_DIRECT frames, from its first sharer -> viewer chain key (§3.3.1)."""
    return hkdf(chain_key, sid.encode(), b"termshare/1 group direct", KEY_SIZE)


def group_signed_data(sid: str, header: bytes | memoryview, ciphertext: bytes | memoryview) -> bytes:
    return GROUP_SIG_LABEL + sid.encode() + header + hashlib.sha256(ciphertext).digest()


def welcome_signed_data(sid: str, viewer_id: int, role: Role, ev_public: bytes, es_public: bytes) -> bytes:
    """What WELCOME's signature covers: both ephemeral keys of the handshake (§3.1 step 4)."""
    return WELCOME_SIG_LABEL + _handshake_names(sid, viewer_id, role, ev_public, es_public)


def load_sign_key(public: bytes) -> Ed25519PublicKey:
    """The sharer's verification key, loaded once per WELCOME rather than once per frame."""
    return Ed25519PublicKey.from_public_bytes(public)


def verify_signature(public: Ed25519PublicKey, signature: bytes | memoryview, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


class SendChain:
    """One direction of a channel, sending side: ratchets every REKEY_FRAMES frames (§3.2)."""

    __slots__ = ("_sid", "_chain", "_aead", "epoch", "seq")

    def __init__(self, chain_key: bytes, sid: str) -> None:
        self._sid = sid
        self._chain = chain_key
        self._aead = AESGCM(traffic_key(chain_key, sid))
        self.epoch = 0
        self.seq = 0

    def next_position(self) -> tuple[int, int]:
        if self.seq >= REKEY_FRAMES:
            self._chain = next_chain_key(self._chain, self._sid)
            self._aead = AESGCM(traffic_key(self._chain, self._sid))
            self.epoch += 1
            self.seq = 0
        return self.epoch, self.seq

    def seal(self, header: Header, plaintext: bytes) -> bytes:
        """Encrypt at the position returned by next_position(), which `header` must carry."""
        if (header.epoch, header.seq) != (self.epoch, self.seq):
            raise ValueError("header does not carry the chain's next position")
        out = self._aead.encrypt(nonce(self.epoch, self.seq), plaintext, self._sid.encode() + header.pack())
        self.seq += 1
        return out


class RecvChain:
    """One direction of a channel, receiving side: accepts only the exact next frame (§6.1)."""

    __slots__ = ("_sid", "_chain", "_aead", "epoch", "seq")

    def __init__(self, chain_key: bytes, sid: str) -> None:
        self._sid = sid
        self._chain = chain_key
        self._aead = AESGCM(traffic_key(chain_key, sid))
        self.epoch = 0
        self.seq = 0

    def open(self, header: Header, ciphertext: bytes) -> bytes:
        if header.epoch == self.epoch and header.seq == self.seq:
            aead = self._aead
            chain = self._chain
        elif header.epoch == self.epoch + 1 and header.seq == 0 and self.seq == REKEY_FRAMES:
            chain = next_chain_key(self._chain, self._sid)
            aead = AESGCM(traffic_key(chain, self._sid))
        else:
            raise SequenceError(
                f"expected channel frame ({self.epoch}, {self.seq}), got ({header.epoch}, {header.seq})"
            )
        try:
            plaintext = aead.decrypt(nonce(header.epoch, header.seq), ciphertext, self._sid.encode() + header.pack())
        except InvalidTag:
            raise DecryptionError("channel frame failed authentication") from None
        # Only an authentic frame moves the window, and the old chain key is dropped with it.
        self._chain, self._aead, self.epoch, self.seq = chain, aead, header.epoch, header.seq + 1
        return plaintext


class GroupKey:
    """An AES-GCM key for one group epoch (§3.3)."""

    __slots__ = ("epoch", "aead")

    def __init__(self, epoch: int, key: bytes) -> None:
        self.epoch = epoch
        self.aead = AESGCM(key)


def open_group(aead: AESGCM, sid: str, header: Header, ciphertext: bytes | memoryview) -> bytes:
    """Open a GROUP frame (under its epoch's group key) or a GROUP_DIRECT one (under the channel's
    group direct key): both use the group position as the nonce."""
    try:
        return aead.decrypt(nonce(header.epoch, header.seq), ciphertext, sid.encode() + header.pack())
    except InvalidTag:
        raise DecryptionError("group frame failed authentication") from None
