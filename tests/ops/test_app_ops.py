"""The relay app's operations endpoints and access control, through Starlette's TestClient."""

from __future__ import annotations

import re
import signal
import time

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from termshare.protocol.envelope import encode_frame, parse_frame
from termshare.protocol.router import Limits
from termshare.protocol.wire import FrameKind
from termshare.relay import RelayConfig, create_app
from termshare.relay.app import bearer_matches
from termshare.relay.server import RelayServer, uvicorn_config

SID = "AAAAAAAAAAAAAAAA"
REGISTER = encode_frame(FrameKind.REGISTER, b"\x01" * 32)


def client(**kwargs: object) -> TestClient:
    limits = kwargs.pop("limits", Limits())
    return TestClient(create_app(RelayConfig(limits=limits, node="test-node", **kwargs)))  # type: ignore[arg-type]


def close_of(c: TestClient, path: str, headers: dict[str, str] | None = None, send: bytes | None = None) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as info:
        with c.websocket_connect(path, headers=headers or {}) as ws:
            if send is not None:
                ws.send_bytes(send)
            while True:
                ws.receive_bytes()
    return info.value.code, info.value.reason


def sample(text: str, name: str, **labels: str) -> float:
    want = {"node": "test-node", **labels}
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m and dict(re.findall(r'(\w+)="([^"]*)"', m[1])) == want:
            return float(m[2])
    raise AssertionError(f"no sample {name}{labels} in\n{text}")


def test_bearer_matches_any_token_and_nothing_else() -> None:
    tokens = ("alpha-1", "beta-22")
    assert bearer_matches("Bearer beta-22", tokens) and bearer_matches("bearer alpha-1 ", tokens)
    for header in (None, "", "Bearer", "Bearer ", "Bearer alpha", "Basic alpha-1", "alpha-1", "Bearer alpha-1x",
                   "Bearer \xe9"):
        assert not bearer_matches(header, tokens), header
    assert not bearer_matches("Bearer ", ("",))


def test_sharer_token_required_4401_before_register_and_viewers_need_none() -> None:
    with client(share_tokens=("s3cret", "other")) as c:
        code, reason = close_of(c, f"/ws/share/{SID}", send=REGISTER)
        assert code == 4401 and "sharer token" in reason
        assert close_of(c, f"/ws/share/{SID}", {"Authorization": "Bearer wrong"}, REGISTER)[0] == 4401
        assert c.get("/healthz").json()["sessions"] == 0
        with c.websocket_connect(f"/ws/share/{SID}", headers={"Authorization": "Bearer other"}) as owner:
            owner.send_bytes(REGISTER)
            assert parse_frame(owner.receive_bytes()).kind is FrameKind.READY
            with c.websocket_connect(f"/ws/view/{SID}") as viewer:  # no token for viewers
                assert parse_frame(viewer.receive_bytes()).kind is FrameKind.READY
        metrics = c.get("/metrics").text
        assert sample(metrics, "termshare_refusals_total", code="4401", reason="token_required") == 2


def test_readyz_503_at_max_sessions_and_while_draining() -> None:
    with client(limits=Limits(max_sessions=1)) as c:
        assert c.get("/readyz").status_code == 200
        with c.websocket_connect(f"/ws/share/{SID}") as owner:
            owner.send_bytes(REGISTER)
            owner.receive_bytes()
            answer = c.get("/readyz")
            assert answer.status_code == 503 and answer.json()["why"] == "at max sessions"
            assert c.get("/healthz").status_code == 200
            owner.send_bytes(encode_frame(FrameKind.END))
        assert c.get("/readyz").status_code == 200
        c.app.state.relay.draining = True  # type: ignore[attr-defined]
        answer = c.get("/readyz")
        assert answer.status_code == 503 and answer.json()["why"] == "shutting down"
        assert sample(c.get("/metrics").text, "termshare_ready") == 0


def test_sigterm_marks_the_relay_draining() -> None:
    config = uvicorn_config(RelayConfig())
    server = RelayServer(config)
    server.handle_exit(signal.SIGTERM, None)
    assert config.app.state.relay.draining and server.should_exit


def test_metrics_exposition_reflects_a_session() -> None:
    with client() as c:
        with c.websocket_connect(f"/ws/share/{SID}") as owner:
            owner.send_bytes(REGISTER)
            owner.receive_bytes()
            with c.websocket_connect(f"/ws/view/{SID}") as viewer:
                viewer.receive_bytes()  # READY
                owner.send_bytes(encode_frame(FrameKind.WELCOME, bytes(181), 1))
                viewer.receive_bytes()
                group = encode_frame(FrameKind.GROUP, bytes(200))
                owner.send_bytes(group)
                viewer.receive_bytes()
                viewer.send_bytes(encode_frame(FrameKind.UPSTREAM, bytes(17), 1))
                owner.receive_bytes()
                answer = c.get("/metrics")
                assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
                text = answer.text
                assert sample(text, "termshare_sessions") == 1 and sample(text, "termshare_viewers") == 1
                assert sample(text, "termshare_connections", role="viewer") == 1
                assert sample(text, "termshare_frames_relayed_total", direction="sharer_to_viewers") == 2
                assert sample(text, "termshare_bytes_relayed_total", direction="sharer_to_viewers") == 18 + 181 + len(group)
                assert sample(text, "termshare_frames_relayed_total", direction="viewers_to_sharer") == 1
                assert sample(text, "termshare_frames_received_total", role="sharer") == 2
            owner.send_bytes(encode_frame(FrameKind.END))
        text = c.get("/metrics").text
        assert sample(text, "termshare_sessions") == 0
        assert sample(text, "termshare_sessions_ended_total", cause="ended") == 1
        assert sample(text, "termshare_connections_total", role="sharer") == 1
        assert sample(text, "termshare_group_frames_dropped_total") == 0
        assert sample(text, "termshare_upstream_frames_dropped_total") == 0
        # Every metric is declared once, with HELP and TYPE, and every sample has the node label.
        names = re.findall(r"^# TYPE (\S+) (counter|gauge)$", text, re.M)
        assert len(names) == len({n for n, _ in names}) >= 15
        assert all('node="test-node"' in line for line in text.splitlines() if not line.startswith("#"))


def test_admin_view_is_404_unless_configured_then_needs_the_token_and_shows_metadata() -> None:
    with client() as c:
        assert c.get("/admin/sessions").status_code == 404
        assert c.get("/admin/sessions", headers={"Authorization": "Bearer x"}).status_code == 404
    with client(admin_token="adm-token") as c:
        assert c.get("/admin/sessions").status_code == 401
        assert c.get("/admin/sessions", headers={"Authorization": "Bearer adm"}).status_code == 401
        with c.websocket_connect(f"/ws/share/{SID}") as owner:
            owner.send_bytes(REGISTER)
            owner.receive_bytes()
            owner.send_bytes(encode_frame(FrameKind.GROUP, b"plaintext-would-never-be-here" + bytes(81)))
            with c.websocket_connect(f"/ws/view/{SID}") as viewer:
                viewer.receive_bytes()
                for _ in range(100):  # the GROUP frame is routed on the sharer's task: wait for it
                    answer = c.get("/admin/sessions", headers={"Authorization": "Bearer adm-token"})
                    if answer.json()["sessions"][0]["frames_from_sharer"]:
                        break
                    time.sleep(0.01)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        data = answer.json()
        assert data["node"] == "test-node"
        (s,) = data["sessions"]
        assert s["id"] == SID and s["viewers"] == 1 and s["sharer"] == "connected"
        assert s["frames_from_sharer"] == 1 and s["bytes_from_sharer"] == 18 + 29 + 81
        assert set(s) == {"id", "age_seconds", "idle_seconds", "viewers", "sharer", "frames_from_sharer",
                          "bytes_from_sharer", "frames_from_viewers", "bytes_from_viewers"}
        assert "plaintext" not in answer.text
