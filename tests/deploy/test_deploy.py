"""The deployment files are real: systemd accepts the unit, nginx proxies a whole session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..certs import self_signed
from ..procs import ROOT, HeadlessShare, Relay, read_until, stop, termshare, timeout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    unit = (ROOT / "termshare.service").read_text().replace("/usr/local/bin/termshare", sys.executable)
    (tmp_path / "termshare.service").write_text(unit)
    result = subprocess.run([analyze, "verify", str(tmp_path / "termshare.service")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "DynamicUser=yes" in unit and "NoNewPrivileges=yes" in unit and "ProtectSystem=strict" in unit


def nginx_config(tmp_path: Path, relay_port: int, https_port: int) -> Path:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing (Debian package nginx-light)"
    cert, key = self_signed(tmp_path)
    site = (ROOT / "nginx.conf.example").read_text()
    site = (site.replace("127.0.0.1:8000", f"127.0.0.1:{relay_port}")
            .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
            .replace("listen [::]:443 ssl http2;", "")
            .replace("listen 80;", f"listen 127.0.0.1:{free_port()};").replace("listen [::]:80;", "")
            .replace("/etc/letsencrypt/live/relay.example.org/fullchain.pem", str(cert))
            .replace("/etc/letsencrypt/live/relay.example.org/privkey.pem", str(key))
            .replace("/var/log/nginx/termshare.log", str(tmp_path / "access.log")))
    (tmp_path / "site.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;
events {{ worker_connections 256; }}
http {{
  client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path}; fastcgi_temp_path {tmp_path};
  uwsgi_temp_path {tmp_path}; scgi_temp_path {tmp_path};
  include {tmp_path}/site.conf;
}}
""")
    result = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return conf


def test_session_through_nginx_with_tls_and_a_path_prefix(tmp_path: Path) -> None:
    relay = Relay("--trust-proxy")
    https_port = free_port()
    conf = nginx_config(tmp_path, relay.port, https_port)
    nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(tmp_path)],
                             start_new_session=True, stderr=subprocess.PIPE)
    share = viewer = None
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", https_port), 0.2).close()
                break
            except OSError:
                subprocess.run(["sleep", "0.1"])
        base = f"https://127.0.0.1:{https_port}/termshare/"
        share = HeadlessShare("--relay", base, "--cafile", str(tmp_path / "cert.pem"),
                              "--cmd", "sh -c 'echo through-nginx-$((6*7)); sleep 30'")
        ro = share.links["read_only"]
        assert ro.startswith(f"https://127.0.0.1:{https_port}/termshare/s/")
        viewer = termshare("join", ro, "--cafile", str(tmp_path / "cert.pem"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert viewer.stdout is not None
        read_until(viewer.stdout, rb"through-nginx-42", 20)
        # The web app is served through the prefix too, with its strict headers.
        import ssl
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        with urllib.request.urlopen(f"{base}healthz", context=ctx, timeout=timeout(10)) as response:
            assert b'"sessions":1' in response.read()
        with urllib.request.urlopen(ro.split("#")[0], context=ctx, timeout=timeout(10)) as response:
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        # Requests are logged, fragments never are (websockets are logged when they close).
        log = (tmp_path / "access.log").read_text()
        assert "/termshare/healthz" in log and ro.split("#")[1] not in log
    finally:
        for proc in (viewer, share and share.proc):
            if proc is not None:
                stop(proc)
        stop(nginx)
        relay.close()
