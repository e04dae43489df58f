"""Ways to reach a relay: the embedded one, TLS with a private CA, and a relay behind a path prefix."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import Procs, Relay, start_json_share, start_pty_join, termshare, timeout


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout(2))
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_embedded_relay(procs: Procs) -> None:
    share, links = start_json_share(procs, None)  # no --relay/--host/--port: an embedded relay
    base = links["relay"]
    assert base.startswith("http://127.0.0.1:")
    port = int(base.rsplit(":", 1)[1])
    assert links["read_write"].startswith(f"{base}/s/{links['session']}#w.")
    assert links["read_only"].startswith(f"{base}/s/{links['session']}#r.")

    viewer = procs.pipe(termshare("join", links["read_only"]), name="join-ro")
    joined = share.wait_event("viewer_joined", timeout())
    assert joined["can_write"] is False and joined["viewers"] == 1
    share.write("echo embedded-$((2+3))\n")
    viewer.wait_stdout(rb"\r\nembedded-5\r\n", timeout())

    share.write("exit 0\n")
    assert share.wait(timeout()) == 0
    assert share.json_events()[-1] == {"event": "ended", "exit_status": 0}
    assert viewer.wait(timeout()) == 0
    assert "the sharer ended the session (exit status 0)" in viewer.stderr()
    assert _refused(port), "the embedded relay outlived its share"


# -- TLS -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert.pem, key.pem)."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "termshare test relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _one_clean_line(text: str) -> str:
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("termshare: "), text
    return lines[0]


def test_tls_relay_with_private_ca(procs: Procs, self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    relay = procs.relay("--certfile", str(cert), "--keyfile", str(key))
    assert relay.scheme == "https"
    base = f"https://127.0.0.1:{relay.port}"

    share, links = start_json_share(procs, base, "--cafile", str(cert))
    assert links["read_only"].startswith(f"{base}/s/")
    viewer = procs.pipe(termshare("join", links["read_only"], "--cafile", str(cert)), name="join-tls")
    share.wait_event("viewer_joined", timeout())
    share.write("echo tls-$((7*6))\n")
    viewer.wait_stdout(rb"\r\ntls-42\r\n", timeout())

    # Without --cafile the certificate is not trusted: a clear sentence, exit 1, no traceback.
    bad_join = procs.pipe(termshare("join", links["read_only"]), name="join-no-ca")
    assert bad_join.wait(timeout()) == 1
    assert "certificate" in _one_clean_line(bad_join.stderr()).lower()
    bad_share = procs.pipe(termshare("share", "--relay", base, "--cmd", "bash --norc --noprofile"), name="share-no-ca")
    assert bad_share.wait(timeout()) == 1
    line = _one_clean_line(bad_share.stderr())
    assert "certificate" in line.lower() and "--cafile" in line
    assert b"Traceback" not in bad_share.stdout()

    share.write("exit\n")
    assert share.wait(timeout()) == 0
    assert viewer.wait(timeout()) == 0


# -- a relay behind a path prefix ------------------------------------------------------------------
PROXY = r'''
"""A raw TCP reverse proxy that strips a path prefix from the request line of each connection."""
import asyncio, sys

PREFIX, TARGET = sys.argv[1], int(sys.argv[2])

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()

async def handle(reader, writer):
    try:
        line = await reader.readuntil(b"\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    method, path, version = line.decode("latin-1").split(" ", 2)
    if not path.startswith(PREFIX + "/"):
        print("refused", path, flush=True)
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    print("proxied", path, flush=True)
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", TARGET)
    up_writer.write(f"{method} {path[len(PREFIX):]} {version}".encode("latin-1"))
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
'''


def test_relay_behind_path_prefix(procs: Procs, shared_relay: Relay, tmp_path: Path) -> None:
    script = tmp_path / "proxy.py"
    script.write_text(PROXY)
    proxy = procs.pipe([sys.executable, str(script), "/prefix", str(shared_relay.port)], name="proxy")
    port = int(proxy.wait_stdout(rb"port (\d+)", timeout()).group(1))
    base = f"http://127.0.0.1:{port}/prefix"

    share, links = start_json_share(procs, base + "/")  # a trailing slash is fine
    sid = links["session"]
    assert links["relay"] == base
    assert links["read_write"].startswith(f"{base}/s/{sid}#w.")
    assert links["read_only"].startswith(f"{base}/s/{sid}#r.")

    # A read-write viewer in a terminal types through the proxy; a piped read-only one watches.
    viewer = start_pty_join(procs, links["read_write"], name="join-rw")
    watcher = procs.pipe(termshare("join", links["read_only"]), name="join-ro")
    share.wait_stdout(rb'"viewers": 2', timeout())
    viewer.type("echo prefix-$((9*9))\r")
    viewer.expect(rb"\r\nprefix-81\r\n", timeout())
    watcher.wait_stdout(rb"\r\nprefix-81\r\n", timeout())

    log = proxy.stdout().decode()
    assert f"proxied /prefix/ws/share/{sid}" in log
    assert log.count(f"proxied /prefix/ws/view/{sid}") == 2
    assert "refused" not in log

    share.write("exit\n")
    assert share.wait(timeout()) == 0
    assert viewer.wait(timeout()) == 0
    assert watcher.wait(timeout()) == 0
