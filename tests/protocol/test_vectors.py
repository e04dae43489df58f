"""Every case in vectors/*.json, checked against the Python implementation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from termshare.protocol import errors, keys, wire
from termshare.protocol.envelope import parse_frame
from termshare.protocol.link import parse_link
from termshare.protocol.messages import decode_message, encode_message
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import FrameKind, Role
from vectors.generate import FILES, event_json, render

VECTORS = Path(__file__).parents[2] / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


@pytest.mark.parametrize("name", sorted(FILES))
def test_committed_vectors_are_current(name: str) -> None:
    assert (VECTORS / name).read_text() == render(name)


def test_constants() -> None:
    c = load("constants.json")
    assert c["version"] == wire.VERSION and c["header_size"] == wire.HEADER_SIZE
    assert c["kinds"] == {k.name: int(k) for k in FrameKind}
    assert c["close_codes"]["REJECTED"] == 4403


@pytest.mark.parametrize("case", load("aead.json"), ids=lambda c: c["name"])
def test_aead(case: dict[str, str]) -> None:
    aead = AESGCM(bytes.fromhex(case["key"]))
    nonce, aad = bytes.fromhex(case["nonce"]), bytes.fromhex(case["aad"])
    assert aead.encrypt(nonce, bytes.fromhex(case["plaintext"]), aad or None).hex() == case["ciphertext"]
    assert aead.decrypt(nonce, bytes.fromhex(case["ciphertext"]), aad or None).hex() == case["plaintext"]


@pytest.mark.parametrize("case", load("keys.json"), ids=lambda c: c["name"])
def test_key_schedule(case: dict[str, Any]) -> None:
    sid, rw = case["sid"], bytes.fromhex(case["rw_secret"])
    ro = keys.derive_ro_secret(rw, sid)
    assert ro.hex() == case["ro_secret"]
    assert keys.derive_psk(Role.READ_WRITE, rw, sid).hex() == case["psk_rw"]
    assert keys.derive_psk(Role.READ_ONLY, ro, sid).hex() == case["psk_ro"]
    hs = case["handshake"]
    role = Role(hs["role"])
    psk = bytes.fromhex(case["psk_rw"] if role is Role.READ_WRITE else case["psk_ro"])
    evk, ev_pub = keys.new_x25519(lambda n: bytes.fromhex(hs["ev_private"]))
    esk, es_pub = keys.new_x25519(lambda n: bytes.fromhex(hs["es_private"]))
    assert (ev_pub.hex(), es_pub.hex()) == (hs["ev_public"], hs["es_public"])
    assert keys.hello_key(psk, ev_pub, sid).hex() == hs["hello_key"]
    frame = bytes.fromhex(hs["hello_frame"])
    assert keys.check_hello_tag(psk, sid, frame[:18], role, ev_pub, frame[-16:])
    dh = keys.x25519(evk, es_pub)
    assert dh.hex() == hs["dh"] == keys.x25519(esk, ev_pub).hex()
    ck_s2v, ck_v2s = keys.channel_chain_keys(dh, psk, sid, hs["viewer_id"], role, ev_pub, es_pub)
    assert (ck_s2v.hex(), ck_v2s.hex()) == (hs["ck_s2v"], hs["ck_v2s"])
    assert keys.traffic_key(ck_s2v, sid).hex() == hs["key_s2v"]
    assert keys.traffic_key(ck_v2s, sid).hex() == hs["key_v2s"]
    assert keys.group_direct_key(ck_s2v, sid).hex() == hs["gd_key"]
    assert keys.next_chain_key(ck_s2v, sid).hex() == hs["ck_s2v_1"]
    assert keys.traffic_key(keys.next_chain_key(ck_v2s, sid), sid).hex() == hs["key_v2s_1"]


@pytest.mark.parametrize("case", load("links.json")["valid"], ids=lambda c: c["url"][-30:])
def test_valid_links(case: dict[str, str]) -> None:
    link = parse_link(case["url"])
    assert (link.base, link.sid, link.secret.hex(), link.key_fp.hex()) == (
        case["base"], case["sid"], case["secret"], case["key_fp"])
    assert link.role is (Role.READ_WRITE if case["role"] == "rw" else Role.READ_ONLY)


@pytest.mark.parametrize("case", load("links.json")["invalid"], ids=lambda c: repr(c["url"][-30:]))
def test_invalid_links(case: dict[str, str]) -> None:
    with pytest.raises(getattr(errors, case["error"])):
        parse_link(case["url"])


@pytest.mark.parametrize("case", load("envelopes.json")["valid"], ids=lambda c: c["kind"])
def test_valid_envelopes(case: dict[str, Any]) -> None:
    frame = parse_frame(bytes.fromhex(case["frame"]))
    h = frame.header
    assert (h.version, h.kind.name, h.viewer_id, h.epoch, h.seq) == (
        case["version"], case["kind"], case["viewer_id"], case["epoch"], case["seq"])
    assert frame.body.hex() == case["body"]


@pytest.mark.parametrize("case", load("envelopes.json")["invalid"], ids=lambda c: c["frame"][:40])
def test_invalid_envelopes(case: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, case["error"])):
        parse_frame(bytes.fromhex(case["frame"]))


@pytest.mark.parametrize("case", load("messages.json")["valid"], ids=lambda c: c["type"])
def test_valid_messages(case: dict[str, Any]) -> None:
    plaintext = bytes.fromhex(case["plaintext"])
    message = decode_message(FrameKind[case["carrier"]], plaintext)
    assert type(message).__name__ == case["type"].title() + "Message"
    fields = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in
              ((name, getattr(message, name)) for name in message.__slots__)}
    assert fields == case["fields"]
    assert encode_message(message) == plaintext


@pytest.mark.parametrize("case", load("messages.json")["invalid"], ids=lambda c: c["plaintext"][:20])
def test_invalid_messages(case: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, case["error"])):
        decode_message(FrameKind[case["carrier"]], bytes.fromhex(case["plaintext"]))


@pytest.mark.parametrize("case", load("transcripts.json"), ids=lambda c: c["name"])
def test_transcripts(case: dict[str, Any]) -> None:
    draws = [bytes.fromhex(d) for d in case["rng"]]

    def rng(n: int) -> bytes:
        draw = draws.pop(0)
        assert len(draw) == n
        return draw

    viewer = ViewerProtocol(parse_link(case["url"]), rng)
    sent: list[bytes] = []
    for step in case["steps"]:
        if "receive" in step:
            viewer.receive_frame(bytes.fromhex(step["receive"]))
        else:
            expected_error = step.get("error")
            try:
                if "send_input" in step:
                    viewer.send_input(bytes.fromhex(step["send_input"]))
                elif "send_resync" in step:
                    viewer.send_resync()
                else:
                    viewer.send_ping(step["send_ping"])
            except errors.TermshareError as exc:
                assert type(exc).__name__ == expected_error
            else:
                assert expected_error is None
        sent.extend(viewer.frames_to_send())
    assert [f.hex() for f in sent] == case["expect_sent"]
    assert [event_json(e) for e in viewer.events_received()] == case["expect_events"]
    assert not draws
