"""Edge branches of the stateless helpers: envelope, keys, link and messages."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from termshare.protocol.envelope import encode_frame, make_header, parse_header
from termshare.protocol.errors import (
    DecryptionError,
    FrameError,
    HandshakeError,
    LinkError,
    MessageError,
    SequenceError,
)
from termshare.protocol.keys import (
    GroupKey,
    RecvChain,
    SendChain,
    SessionKeys,
    derive_psk,
    derive_ro_secret,
    new_x25519,
    nonce,
    open_group,
    x25519,
)
from termshare.protocol.link import Link, format_link, parse_link
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
    WelcomeMessage,
    carrier_of,
    decode_welcome,
    encode_message,
    encode_welcome,
)
from termshare.protocol.wire import (
    HEADER_SIZE,
    MAX_FRAME,
    MAX_INPUT,
    MAX_OUTPUT,
    REKEY_FRAMES,
    SIG_SIZE,
    TAG_SIZE,
    FrameKind,
    Role,
)

SID = "abcdefghijklmnop"
SECRET = bytes(range(16))


# -- envelope ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["viewer_id", "epoch", "seq"])
@pytest.mark.parametrize("value", [-1, 1 << 32])
def test_make_header_refuses_values_that_do_not_fit_in_32_bits(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        make_header(FrameKind.DIRECT, 17, **{field: value})


def test_make_header_accepts_the_32_bit_extremes() -> None:
    header = make_header(FrameKind.DIRECT, 17, viewer_id=0xFFFFFFFF, epoch=0, seq=0xFFFFFFFF)
    assert parse_header(header.pack() + bytes(17)) == header


def test_make_header_refuses_a_body_beyond_max_frame() -> None:
    make_header(FrameKind.GROUP, MAX_FRAME - HEADER_SIZE)  # exactly MAX_FRAME is allowed
    with pytest.raises(ValueError, match="MAX_FRAME"):
        make_header(FrameKind.GROUP, MAX_FRAME - HEADER_SIZE + 1)


def test_parse_header_refuses_a_frame_beyond_max_frame_before_reading_it() -> None:
    largest = encode_frame(FrameKind.GROUP, bytes(MAX_FRAME - HEADER_SIZE))
    assert parse_header(largest).length == MAX_FRAME - HEADER_SIZE
    with pytest.raises(FrameError, match="exceeds MAX_FRAME"):
        parse_header(largest + b"\x00")


@pytest.mark.parametrize(
    ("kind", "minimum"),
    [(FrameKind.GROUP, 1 + TAG_SIZE + SIG_SIZE), (FrameKind.DIRECT, 1 + TAG_SIZE), (FrameKind.UPSTREAM, 1 + TAG_SIZE), (FrameKind.READY, 1)],
)
def test_variable_size_kinds_need_their_minimum_body(kind: FrameKind, minimum: int) -> None:
    assert parse_header(encode_frame(kind, bytes(minimum))).length == minimum
    with pytest.raises(FrameError, match="at least"):
        parse_header(encode_frame(kind, bytes(minimum - 1)))


# -- keys -------------------------------------------------------------------------------------------
def test_session_keys_repr_shows_no_key_material() -> None:
    keys = SessionKeys.from_secret(SID, Role.READ_WRITE, SECRET)
    text = repr(keys)
    assert text == f"SessionKeys(sid={SID!r})"
    assert keys.psk_rw is not None
    for secret in (keys.psk_ro, keys.psk_rw):
        assert secret.hex() not in text and repr(secret) not in text


def test_read_only_holder_derives_the_same_ro_psk_and_no_rw_psk() -> None:
    rw = SessionKeys.from_secret(SID, Role.READ_WRITE, SECRET)
    ro = SessionKeys.from_secret(SID, Role.READ_ONLY, derive_ro_secret(SECRET, SID))
    assert ro.psk(Role.READ_ONLY) == rw.psk(Role.READ_ONLY)
    assert ro.psk(Role.READ_WRITE) is None
    assert rw.psk(Role.READ_WRITE) == derive_psk(Role.READ_WRITE, SECRET, SID) != rw.psk_ro


@pytest.mark.parametrize("point", [bytes(32), b"\x01" + bytes(31)], ids=["zero", "one"])
def test_small_order_peer_key_is_a_handshake_error(point: bytes) -> None:
    private, _ = new_x25519(lambda n: bytes(range(1, n + 1)))
    with pytest.raises(HandshakeError, match="small-order"):
        x25519(private, point)


def test_seal_refuses_a_header_that_is_not_the_next_position_and_does_not_advance() -> None:
    chain = SendChain(bytes(32), SID)
    wrong = make_header(FrameKind.DIRECT, 1 + TAG_SIZE, 1, 0, 1)
    with pytest.raises(ValueError, match="next position"):
        chain.seal(wrong, b"\x21")
    assert (chain.epoch, chain.seq) == (0, 0)
    right = make_header(FrameKind.DIRECT, 1 + TAG_SIZE, 1, *chain.next_position())
    ciphertext = chain.seal(right, b"\x21")
    assert RecvChain(bytes(32), SID).open(right, ciphertext) == b"\x21"


def test_recv_chain_rejects_a_forged_frame_and_keeps_its_window() -> None:
    send, recv = SendChain(bytes(32), SID), RecvChain(bytes(32), SID)
    header = make_header(FrameKind.DIRECT, 1 + TAG_SIZE, 1, *send.next_position())
    ciphertext = send.seal(header, b"\x21")
    forged = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(DecryptionError):
        recv.open(header, forged)
    assert (recv.epoch, recv.seq) == (0, 0)  # a forgery does not move the window
    assert recv.open(header, ciphertext) == b"\x21"
    with pytest.raises(SequenceError):
        recv.open(header, ciphertext)  # and the authentic one is accepted once only


def test_open_group_with_another_key_is_a_decryption_error() -> None:
    header = make_header(FrameKind.GROUP, 1 + TAG_SIZE + SIG_SIZE, 0, 3, 7)
    ciphertext = AESGCM(bytes(32)).encrypt(nonce(3, 7), b"\x01x", SID.encode() + header.pack())
    assert open_group(GroupKey(3, bytes(32)).aead, SID, header, ciphertext) == b"\x01x"
    with pytest.raises(DecryptionError, match="group"):
        open_group(GroupKey(3, b"\x01" * 32).aead, SID, header, ciphertext)


# -- link -------------------------------------------------------------------------------------------
def test_link_repr_hides_the_secret_and_url_round_trips() -> None:
    url = format_link("https://relay.example/prefix/", SID, Role.READ_WRITE, SECRET, bytes(16))
    link = parse_link(url)
    assert link == Link("https://relay.example/prefix", SID, Role.READ_WRITE, SECRET, bytes(16))
    assert link.url == url
    assert "w." not in repr(link) and url.split("#")[1] not in repr(link)
    assert repr(link) == f"Link(base='https://relay.example/prefix', sid={SID!r}, role=READ_WRITE)"


@pytest.mark.parametrize("url", [f"https://[::1/s/{SID}#w.AAAAAAAAAAAAAAAAAAAAAA", f"http://[relay/s/{SID}#r.x"])
def test_url_that_urlsplit_refuses_is_a_link_error(url: str) -> None:
    with pytest.raises(LinkError, match="not a valid URL"):
        parse_link(url)


# -- messages ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (OutputMessage(b"x"), FrameKind.GROUP),
        (ResizeMessage(80, 24), FrameKind.GROUP),
        (ViewersMessage(1), FrameKind.GROUP),
        (ByeMessage(0), FrameKind.GROUP),
        (SnapshotMessage(0, 0, 80, 24, b""), FrameKind.DIRECT),
        (RekeyMessage(1, bytes(32), 0), FrameKind.DIRECT),
        (RemovedMessage(), FrameKind.DIRECT),
        (PongMessage(1), FrameKind.DIRECT),
        (InputMessage(b"x"), FrameKind.UPSTREAM),
        (ResyncMessage(), FrameKind.UPSTREAM),
        (PingMessage(1), FrameKind.UPSTREAM),
    ],
)
def test_carrier_of_names_the_frame_kind_of_each_message(message: object, kind: FrameKind) -> None:
    assert carrier_of(message) is kind  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [OutputMessage(b""), OutputMessage(bytes(MAX_OUTPUT + 1)), InputMessage(b""), InputMessage(bytes(MAX_INPUT + 1))],
    ids=["output-empty", "output-too-long", "input-empty", "input-too-long"],
)
def test_encoding_data_outside_its_limits_is_a_value_error(message: OutputMessage | InputMessage) -> None:
    with pytest.raises(ValueError, match="outside 1.."):
        encode_message(message)


def test_data_at_its_limits_encodes() -> None:
    assert len(encode_message(OutputMessage(bytes(MAX_OUTPUT)))) == 1 + MAX_OUTPUT
    assert len(encode_message(InputMessage(bytes(MAX_INPUT)))) == 1 + MAX_INPUT


@pytest.mark.parametrize("flags", [0x02, 0x80, 0xFF])
def test_welcome_with_unknown_flags_is_a_message_error(flags: int) -> None:
    good = encode_welcome(WelcomeMessage(True, bytes(32), 5, bytes(32), bytes(64)))
    assert decode_welcome(good) == WelcomeMessage(True, bytes(32), 5, bytes(32), bytes(64))
    with pytest.raises(MessageError, match="unknown flags"):
        decode_welcome(bytes([flags]) + good[1:])
    with pytest.raises(MessageError, match="133 bytes"):
        decode_welcome(good[:-1])


def test_chains_ratchet_after_rekey_frames_and_the_receiver_refuses_a_cut_epoch() -> None:
    send, recv, early = SendChain(b"\x07" * 32, SID), RecvChain(b"\x07" * 32, SID), RecvChain(b"\x07" * 32, SID)
    send.seq = recv.seq = REKEY_FRAMES  # as if 2^20 frames had gone by
    early.seq = REKEY_FRAMES - 1
    assert send.next_position() == (1, 0)
    header = make_header(FrameKind.UPSTREAM, 1 + TAG_SIZE, 2, 1, 0)
    ciphertext = send.seal(header, b"\x21")
    with pytest.raises(SequenceError):
        early.open(header, ciphertext)  # the relay cannot cut epoch 0 short
    assert recv.open(header, ciphertext) == b"\x21"
    assert (recv.epoch, recv.seq) == (1, 1)
    # Epoch 1 uses a new key: the same frame claimed for epoch 0 does not authenticate.
    fresh = RecvChain(b"\x07" * 32, SID)
    fresh_header = make_header(FrameKind.UPSTREAM, 1 + TAG_SIZE, 2, 0, 0)
    with pytest.raises(DecryptionError):
        fresh.open(fresh_header, ciphertext)


def test_value_records_behave_like_frozen_dataclasses() -> None:
    import pytest as _pytest

    from termshare.protocol import events as ev
    from termshare.protocol.messages import ResizeMessage

    out = ev.Output(b"x")
    assert out == ev.Output(data=b"x") and hash(out) == hash(ev.Output(b"x"))
    assert out != ev.Input(1, b"x") and out != b"x" and ev.Output(b"x") != ev.Output(b"y")
    assert repr(ev.Resize(80, 24)) == "Resize(cols=80, rows=24)" and ev.SharerAway() == ev.SharerAway()
    assert not hasattr(out, "__dict__")  # slots
    with _pytest.raises(AttributeError, match="immutable"):
        out.data = b"y"  # type: ignore[misc]
    with _pytest.raises(AttributeError, match="immutable"):
        del out.data  # type: ignore[misc]
    match ResizeMessage(3, 4):
        case ResizeMessage(cols, rows):
            assert (cols, rows) == (3, 4)
    for bad, error in ((lambda: ev.Output(), "missing data"), (lambda: ev.Output(b"1", b"2"), "takes 1 arguments"),  # type: ignore[call-arg]
                       (lambda: ev.Output(b"1", data=b"2"), "repeated"), (lambda: ev.Output(foo=1), "unexpected")):  # type: ignore[call-arg]
        with _pytest.raises(TypeError, match=error):
            bad()
