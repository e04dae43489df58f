"""The relay app through Starlette's TestClient: routing, refusals, headers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from termshare.protocol import events as ev
from termshare.protocol.envelope import encode_frame, parse_frame
from termshare.protocol.link import parse_link
from termshare.protocol.router import Limits
from termshare.protocol.share import ShareProtocol
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import FrameKind
from termshare.relay import RelayConfig, create_app

SID = "AAAAAAAAAAAAAAAA"


def client(tmp_path: Path | None = None, **limits: int) -> TestClient:
    config = RelayConfig(limits=Limits(**limits))
    if tmp_path is not None:
        config.web_dir = tmp_path
    return TestClient(create_app(config))


def test_healthz() -> None:
    with client() as c:
        assert c.get("/healthz").json() == {"ok": True, "sessions": 0, "viewers": 0}


def test_pages_have_strict_headers_and_no_traversal(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html>connect")
    (tmp_path / "session.html").write_text("<!doctype html>session")
    (tmp_path / "assets" / "app.js").write_text("1")
    (tmp_path / "secret.txt").write_text("no")
    with client(tmp_path) as c:
        page = c.get(f"/s/{SID}")
        assert page.text.endswith("session")
        assert page.headers["referrer-policy"] == "no-referrer"
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert c.get("/").text.endswith("connect")
        assert c.get("/assets/app.js").headers["content-type"].startswith("text/javascript")
        assert c.get("/assets/..%2Fsecret.txt").status_code == 404


def test_placeholder_when_the_web_app_is_not_built(tmp_path: Path) -> None:
    with client(tmp_path / "missing") as c:
        page = c.get(f"/s/{SID}")
        assert page.status_code == 200 and "termshare join" in page.text


def close_code(c: TestClient, path: str, send: list[bytes | str] = ()) -> int:  # type: ignore[assignment]
    with pytest.raises(WebSocketDisconnect) as info:
        with c.websocket_connect(path) as ws:
            for item in send:
                ws.send_bytes(item) if isinstance(item, bytes) else ws.send_text(item)
            while True:
                ws.receive_bytes()
    return info.value.code


def test_refusals_have_close_codes() -> None:
    with client(max_viewers=1) as c:
        assert close_code(c, f"/ws/view/{SID}") == 4404
        assert close_code(c, "/ws/view/short") == 4400
        assert close_code(c, f"/ws/share/{SID}", ["text"]) == 4400
        assert close_code(c, f"/ws/share/{SID}", [b"\x01\x04" + bytes(20)]) == 4400
        assert close_code(c, f"/ws/share/{SID}", [encode_frame(FrameKind.END)]) == 4400  # no REGISTER
        with c.websocket_connect(f"/ws/share/{SID}") as owner:
            owner.send_bytes(encode_frame(FrameKind.REGISTER, b"\x01" * 32))
            assert parse_frame(owner.receive_bytes()).kind is FrameKind.READY
            assert close_code(c, f"/ws/share/{SID}", [encode_frame(FrameKind.REGISTER, b"\x02" * 32)]) == 4409
            with c.websocket_connect(f"/ws/view/{SID}") as viewer:
                assert parse_frame(viewer.receive_bytes()).kind is FrameKind.READY
                assert close_code(c, f"/ws/view/{SID}") == 4429
                # A viewer may not send sharer frames, nor frames with another viewer's id.
            assert close_code(c, f"/ws/view/{SID}", [encode_frame(FrameKind.GROUP, bytes(81))]) == 4400
            assert close_code(c, f"/ws/view/{SID}", [encode_frame(FrameKind.HELLO, bytes(49), 999)]) == 4400


def test_a_whole_session_through_the_app() -> None:
    screen = (80, 24, b"$ ")
    share = ShareProtocol(rng=os.urandom, clock=lambda: 0.0, screen=lambda: screen)
    with client() as c, c.websocket_connect(f"/ws/share/{share.sid}") as sws:
        share.connect()
        for f in share.frames_to_send():
            sws.send_bytes(f)
        share.receive_frame(sws.receive_bytes())
        assert isinstance(share.events_received()[0], ev.Registered)
        viewer = ViewerProtocol(parse_link(share.read_write_link("http://testserver") or ""), os.urandom)
        with c.websocket_connect(f"/ws/view/{share.sid}") as vws:
            viewer.receive_frame(vws.receive_bytes())  # READY
            for f in viewer.frames_to_send():
                vws.send_bytes(f)  # HELLO
            share.receive_frame(sws.receive_bytes())
            assert isinstance(share.events_received()[0], ev.ViewerJoined)
            for f in share.frames_to_send():
                sws.send_bytes(f)  # WELCOME, SNAPSHOT, VIEWERS
            for _ in range(3):
                viewer.receive_frame(vws.receive_bytes())
            share.send_output(b"hello through the relay")
            for f in share.frames_to_send():
                sws.send_bytes(f)
            viewer.receive_frame(vws.receive_bytes())
            events = viewer.events_received()
            assert [type(e) for e in events] == [ev.Ready, ev.Welcomed, ev.Snapshot, ev.Viewers, ev.Output]
            assert events[-1].data == b"hello through the relay"
            assert c.get("/healthz").json() == {"ok": True, "sessions": 1, "viewers": 1}
        share.receive_frame(sws.receive_bytes())  # VIEWER_LEFT
        assert isinstance(share.events_received()[0], ev.ViewerLeft)
        sws.send_bytes(encode_frame(FrameKind.END))
    with client() as c2:
        assert c2.get("/healthz").json()["sessions"] == 0


