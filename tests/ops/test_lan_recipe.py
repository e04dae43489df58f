"""README's "A relay on your LAN with a self-signed certificate", run as written with IP=127.0.0.1:
the certificate comes from the documented openssl command, the relay serves https/wss with it, and
`share`/`join` with --cafile (certificates verified) carry a session through it."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ..e2e.conftest import REPO, Procs, termshare, timeout

SECTION = "### A relay on your LAN with a self-signed certificate"


def recipe() -> tuple[str, list[str]]:
    """The first sh block of the section: the openssl lines (with the IP= line) and the serve argv."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the LAN section has no sh block"
    lines = block[1].replace("\\\n", " ").splitlines()
    make_cert = "\n".join(line for line in lines if line.startswith(("IP=", "openssl ")))
    (serve,) = [line for line in lines if line.startswith("termshare serve")]
    return make_cert, serve.split()[1:]


def test_lan_recipe_with_a_self_signed_certificate(procs: Procs, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        if os.environ.get("TERMSHARE_REQUIRE_BROWSER"):
            pytest.fail("openssl is missing (Debian package openssl)")
        pytest.skip("openssl is missing (Debian package openssl)")
    make_cert, serve = recipe()
    assert re.search(r"^IP=\S+", make_cert, re.M) and "subjectAltName=IP:$IP" in make_cert
    script = re.sub(r"^IP=\S+", "IP=127.0.0.1", make_cert, flags=re.M)
    result = subprocess.run(["bash", "-euc", script], cwd=tmp_path, capture_output=True, text=True, timeout=timeout(30))
    assert result.returncode == 0, result.stderr
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    assert cert.is_file() and key.is_file()

    # The documented serve line, on loopback rather than every interface, on a free port, with the
    # certificate files where the test made them.
    assert serve[:2] == ["serve", "--host"] and serve[2] == "0.0.0.0"
    args = serve[3:]
    args[args.index("--port") + 1] = "0"
    args[args.index("--certfile") + 1] = str(cert)
    args[args.index("--keyfile") + 1] = str(key)
    proc = procs.pipe(termshare("serve", "--host", "127.0.0.1", *args), name="relay")
    port = int(proc.wait_stderr(r"termshare relay on https://127\.0\.0\.1:(\d+)", timeout())[1])
    base = f"https://127.0.0.1:{port}"

    # Verified TLS with the certificate as the only trust anchor (what a browser does once it is imported).
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(f"{base}/readyz", timeout=timeout(5), context=context) as answer:
        assert answer.status == 200
    with pytest.raises(urllib.error.URLError):  # untrusted without it
        urllib.request.urlopen(f"{base}/healthz", timeout=timeout(5), context=ssl.create_default_context()).close()

    share = procs.pipe(termshare("share", "--json", "--relay", base, "--cafile", str(cert),
                                 "--cmd", "sh -c 'sleep 1; echo over-lan-tls-$((6*7)); sleep 30'"), name="share")
    links = share.wait_event("links", timeout())
    assert links["read_only"].startswith(f"{base}/s/")
    viewer = procs.pipe(termshare("join", links["read_only"], "--cafile", str(cert)), name="join")
    viewer.wait_stdout(rb"over-lan-tls-42", timeout())
    untrusting = procs.pipe(termshare("join", links["read_only"]), name="join-untrusting")
    assert untrusting.wait(timeout(20)) != 0
    assert "--cafile" in untrusting.stderr() or "certificate" in untrusting.stderr()
