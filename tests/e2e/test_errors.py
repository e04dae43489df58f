"""Bad input: one clear line on stderr, a non-zero exit status, never a traceback."""

from __future__ import annotations

import socket

import pytest

from ..procs import free_port
from .conftest import SHELL_CMD, Procs, Relay, start_json_share, termshare, timeout

SID = "AAAAAAAAAAAAAAAA"
SECRET = "B" * 43  # 16-byte secret and 16-byte key fingerprint, base64url


def assert_clean_failure(proc, contains: list[str], status: int = 1, seconds: float = 10) -> str:  # type: ignore[no-untyped-def]
    code = proc.wait(timeout(seconds))
    err = proc.stderr()
    output = err + proc.stdout().decode("utf-8", "replace")
    assert "Traceback" not in output, output
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("termshare: "), f"expected one line on stderr, got:\n{err}"
    for text in contains:
        assert text.lower() in lines[0].lower(), lines[0]
    assert code == status, f"exit status {code}, stderr: {err}"
    return lines[0]


@pytest.mark.parametrize(("url", "says"), [
    ("not a link", "starts with http:// or https://"),
    ("ftp://127.0.0.1/s/AAAAAAAAAAAAAAAA#r.BBBBBBBBBBBBBBBBBBBBBB", "starts with http:// or https://"),
    ("http://127.0.0.1:9/session/AAAAAAAAAAAAAAAA#r.BBBBBBBBBBBBBBBBBBBBBB", "ends in /s/<session id>"),
    ("http://127.0.0.1:9/s/short#r.BBBBBBBBBBBBBBBBBBBBBB", "is not a session id"),
    ("http://127.0.0.1:9/s/AAAAAAAAAAAAAAAA", "no key"),
    ("http://127.0.0.1:9/s/AAAAAAAAAAAAAAAA#x.BBBBBBBBBBBBBBBBBBBBBB", "must start with 'w.'"),
    ("http://127.0.0.1:9/s/AAAAAAAAAAAAAAAA#r.BBBB", "damaged"),
])
def test_join_malformed_link(procs: Procs, url: str, says: str) -> None:
    assert_clean_failure(procs.pipe(termshare("join", url), name="join-bad"), [says])


def _change_first_secret_char(link: str) -> str:
    head, secret = link.split("#", 1)
    role, key = secret.split(".", 1)
    first = "A" if key[0] != "A" else "B"  # the first character carries 6 full bits of the secret
    return f"{head}#{role}.{first}{key[1:]}"


@pytest.mark.parametrize("which", ["read_write", "read_only"])
def test_join_wrong_key(procs: Procs, shared_relay: Relay, which: str) -> None:
    share, links = start_json_share(procs, shared_relay.url)
    bad = procs.pipe(termshare("join", _change_first_secret_char(links[which])), name="join-wrong-key")
    assert_clean_failure(bad, ["the key is wrong"])
    assert b"termshare" not in bad.stdout()  # nothing of the session was shown
    # The sharer is unharmed: a viewer with the right link still gets in.
    good = procs.pipe(termshare("join", links["read_only"]), name="join-good")
    share.wait_event("viewer_joined", timeout())
    share.write("echo still-$((1+1))\n")
    good.wait_stdout(rb"\r\nstill-2\r\n", timeout())
    share.write("exit\n")
    assert share.wait(timeout()) == 0
    assert good.wait(timeout()) == 0


def test_join_unknown_session(procs: Procs, shared_relay: Relay) -> None:
    url = f"{shared_relay.url}/s/{SID}#r.{SECRET}"
    assert_clean_failure(procs.pipe(termshare("join", url), name="join-unknown"), ["no such session"])


def test_join_dead_relay(procs: Procs) -> None:
    url = f"http://127.0.0.1:{free_port()}/s/{SID}#r.{SECRET}"
    assert_clean_failure(procs.pipe(termshare("join", url), name="join-dead"), ["cannot join through"])


def test_share_dead_relay(procs: Procs) -> None:
    share = procs.pipe(termshare("share", "--host", "127.0.0.1", "--port", str(free_port()), "--cmd", SHELL_CMD),
                       name="share-dead")
    assert_clean_failure(share, ["cannot reach the relay", "connection refused"])


def test_share_bad_relay_url(procs: Procs) -> None:
    share = procs.pipe(termshare("share", "--relay", "ftp://relay.example/", "--cmd", SHELL_CMD), name="share-ftp")
    assert_clean_failure(share, ["is not a relay URL"])


def test_serve_port_in_use(procs: Procs) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        serve = procs.pipe(termshare("serve", "--host", "127.0.0.1", "--port", str(port)), name="serve-busy")
        assert_clean_failure(serve, [f"cannot listen on 127.0.0.1:{port}", "in use"])


def test_serve_certfile_without_keyfile(procs: Procs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cert = tmp_path / "cert.pem"
    cert.write_text("not really a certificate\n")
    serve = procs.pipe(termshare("serve", "--port", "0", "--certfile", str(cert)), name="serve-nokey")
    assert_clean_failure(serve, ["--certfile and --keyfile go together"])


@pytest.mark.parametrize("cmd", ["", "   "])
def test_share_empty_cmd(procs: Procs, shared_relay: Relay, cmd: str) -> None:
    # A live relay, so that only the empty command can make share fail. It must fail at once,
    # before connecting: not fall back to $SHELL and share a shell nobody asked for.
    share = procs.pipe(termshare("share", "--host", "127.0.0.1", "--port", str(shared_relay.port), "--cmd", cmd),
                       name="share-empty-cmd")
    assert_clean_failure(share, ["--cmd is empty"], seconds=5)
