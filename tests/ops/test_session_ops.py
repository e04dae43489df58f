"""A whole scripted session against `termshare serve` with a sharer token and an admin token:
the relay's log has the events and no secret or plaintext; metrics and the admin view reflect it."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid

from ..e2e.conftest import Procs, start_json_share, start_pty_join, termshare, timeout

SHARE_TOKEN = "share-" + uuid.uuid4().hex
ADMIN_TOKEN = "admin-" + uuid.uuid4().hex


def hex_with_letters() -> str:
    while True:
        value = uuid.uuid4().hex
        if any(c in "abcdef" for c in value[:8]):
            return value


def get(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout(5)) as response:
        return response.read().decode()


def metric(text: str, name: str, labels: str = "") -> float:
    prefix = name + "{" + 'node="ops-node"' + ("," + labels if labels else "") + "} "
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line[len(prefix):])


def test_full_session_logs_metadata_only_and_metrics_and_admin_reflect_it(procs: Procs) -> None:
    relay = procs.relay("--share-token", SHARE_TOKEN, "--admin-token", ADMIN_TOKEN, "--node-name", "ops-node")

    # Without the token the sharer is refused with one clear sentence and exit status 1.
    refused = procs.pipe(termshare("share", "--json", "--relay", relay.url, "--cmd", "true"), name="no-token")
    assert refused.wait(timeout(15)) == 1
    assert "the relay requires a sharer token: pass --share-token or set TERMSHARE_SHARE_TOKEN" in refused.stderr()
    wrong = procs.pipe(termshare("share", "--json", "--relay", relay.url, "--share-token", "nope", "--cmd", "true"),
                       name="wrong-token")
    assert wrong.wait(timeout(15)) == 1 and "requires a sharer token" in wrong.stderr()

    # With the token (from the environment), a full session: a read-write viewer types.
    share, links = start_json_share(procs, relay.url, env={**procs.env, "TERMSHARE_SHARE_TOKEN": SHARE_TOKEN})
    viewer = start_pty_join(procs, links["read_write"], name="join-rw")
    typed = hex_with_letters()
    shown = typed.upper()  # what the shell prints: never typed, never sent as input
    viewer.type(f"echo {typed} | tr a-f A-F\r")
    viewer.expect(shown.encode(), timeout())

    text = get(f"{relay.url}/metrics")
    assert metric(text, "termshare_sessions") == 1 and metric(text, "termshare_viewers") == 1
    assert metric(text, "termshare_refusals_total", 'code="4401",reason="token_required"') == 2
    assert metric(text, "termshare_frames_relayed_total", 'direction="sharer_to_viewers"') > 0
    assert metric(text, "termshare_frames_relayed_total", 'direction="viewers_to_sharer"') > 0
    assert metric(text, "termshare_bytes_relayed_total", 'direction="sharer_to_viewers"') > 0

    listing = subprocess.run(termshare("sessions", "--relay", relay.url), capture_output=True, text=True,
                             env={**procs.env, "TERMSHARE_ADMIN_TOKEN": ADMIN_TOKEN}, timeout=timeout(15))
    assert listing.returncode == 0, listing.stderr
    assert links["session"] in listing.stdout and "connected" in listing.stdout
    assert "1 session on node ops-node" in listing.stdout
    as_json = subprocess.run(termshare("sessions", "--relay", relay.url, "--admin-token", ADMIN_TOKEN, "--json"),
                             capture_output=True, text=True, env=procs.env, timeout=timeout(15))
    (row,) = json.loads(as_json.stdout)["sessions"]
    assert row["id"] == links["session"] and row["viewers"] == 1 and row["frames_from_viewers"] > 0
    bad = subprocess.run(termshare("sessions", "--relay", relay.url, "--admin-token", "wrong"), capture_output=True,
                         text=True, env=procs.env, timeout=timeout(15))
    assert bad.returncode == 1 and "refused the admin token" in bad.stderr

    viewer.write(b"\x1d")  # Ctrl-] leaves
    assert viewer.wait(timeout()) == 0
    share.wait_event("viewer_left", timeout())
    share.write("exit\n")
    assert share.wait(timeout()) == 0
    ended = metric(get(f"{relay.url}/metrics"), "termshare_sessions_ended_total", 'cause="ended"')
    assert ended == 1

    log = relay.proc.stderr()
    records = [json.loads(line) for line in log.splitlines()]  # stderr is not a tty: one JSON object a line
    events = [(r["event"], r.get("code")) for r in records]
    assert events[0] == ("listening", None)
    assert events.count(("refused", 4401)) == 2
    for wanted in ("session_registered", "viewer_joined", "viewer_left", "session_ended"):
        assert any(r["event"] == wanted and r.get("sid") == links["session"] for r in records), (wanted, log)
    (end,) = [r for r in records if r["event"] == "session_ended"]
    assert end["cause"] == "ended" and end["bytes"] > 0 and end["viewer_bytes"] > 0

    secrets = [links["read_write"].split("#", 1)[1], links["read_only"].split("#", 1)[1]]
    for needle in (*secrets, links["read_write"], links["read_only"], typed, shown, SHARE_TOKEN, ADMIN_TOKEN):
        assert needle not in log, needle
        assert needle.lower() not in log.lower(), needle


def test_idle_session_expires_and_the_sharer_stops_with_a_message(procs: Procs) -> None:
    relay = procs.relay("--idle-timeout", "2", "--log-format", "text")
    share, links = start_json_share(procs, relay.url)
    viewer = procs.pipe(termshare("join", links["read_only"]), name="join")
    share.wait_event("viewer_joined", timeout())
    # (share --json also writes the sentence as text before its "error" event: not parsed here)
    share.wait_stdout(rb'"event": "error", "message": "the relay ended the session because it was idle"', timeout(15))
    viewer.wait(timeout())
    assert "the session ended" in viewer.stderr()  # closed 4410 (with reason "idle timeout")
    assert json.loads(get(f"{relay.url}/healthz"))["sessions"] == 0
    assert "session_ended" in relay.proc.stderr() and "cause=idle" in relay.proc.stderr()
