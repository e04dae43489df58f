"""Hypothesis fuzzing of every parser: only documented errors come out, state machines never raise."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from termshare.protocol.envelope import encode_frame, parse_frame
from termshare.protocol.errors import FrameError, LinkError, MessageError
from termshare.protocol.link import parse_link
from termshare.protocol.messages import decode_message, decode_welcome
from termshare.protocol.router import Router
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import FrameKind

from .harness import Net

KINDS = st.sampled_from(list(FrameKind))
FRAMES = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda k, b, v, e, s: encode_frame(k, b, v, e, s), KINDS, st.binary(max_size=200),
              st.integers(0, 5), st.integers(0, 2), st.integers(0, 5)),
)


@given(st.binary(max_size=300))
def test_parse_frame(data: bytes) -> None:
    try:
        frame = parse_frame(data)
    except FrameError:
        return
    assert encode_frame(frame.kind, frame.body, frame.header.viewer_id, frame.header.epoch, frame.header.seq) == data


@given(st.sampled_from([FrameKind.GROUP, FrameKind.DIRECT, FrameKind.UPSTREAM]), st.binary(max_size=100))
def test_decode_message(carrier: FrameKind, data: bytes) -> None:
    try:
        decode_message(carrier, data)
    except MessageError:
        pass


@given(st.binary(max_size=100))
def test_decode_welcome(data: bytes) -> None:
    try:
        decode_welcome(data)
    except MessageError:
        pass


@given(st.text(max_size=120))
def test_parse_link(text: str) -> None:
    try:
        parse_link(text)
    except LinkError:
        pass


@given(st.text(alphabet="htps:/.#wr-_AQabc0123456789?=%@[]", max_size=90))
def test_parse_link_near_misses(text: str) -> None:
    try:
        parse_link(text)
    except LinkError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(FRAMES, max_size=20))
def test_viewer_never_raises(frames: list[bytes]) -> None:
    net = Net()
    viewer = ViewerProtocol(parse_link(net.link()), os.urandom)
    for frame in frames:
        viewer.receive_frame(frame)
    viewer.frames_to_send()
    viewer.events_received()


@settings(max_examples=200, deadline=None)
@given(st.lists(FRAMES, max_size=20))
def test_sharer_never_raises(frames: list[bytes]) -> None:
    net = Net()
    net.join()
    for frame in frames:
        net.share.receive_frame(frame)
    net.share.frames_to_send()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), FRAMES), max_size=30))
def test_router_never_raises(traffic: list[tuple[int, bytes]]) -> None:
    router = Router()
    sid = "AAAAAAAAAAAAAAAA"
    router.connected(1, sid, "a", True, 0)
    router.received(1, encode_frame(FrameKind.REGISTER, bytes(32)), 0)
    for conn in (2, 3, 4):
        router.connected(conn, sid, "b", False, 0)
    for conn, frame in traffic:
        router.received(conn, frame, 0)
    router.tick(1000)
    router.take_actions()
