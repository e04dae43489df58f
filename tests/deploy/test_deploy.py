"""The deployment files are real: systemd accepts the unit, nginx proxies a whole session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..certs import self_signed
from ..cluster.harness import RedisServer, node
from ..procs import ROOT, HeadlessShare, Relay, free_port, read_until, stop, termshare, timeout


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    unit = (ROOT / "termshare.service").read_text().replace("/usr/local/bin/termshare", sys.executable)
    (tmp_path / "termshare.service").write_text(unit)
    result = subprocess.run([analyze, "verify", str(tmp_path / "termshare.service")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "DynamicUser=yes" in unit and "NoNewPrivileges=yes" in unit and "ProtectSystem=strict" in unit


def nginx_config(tmp_path: Path, relay_port: int, https_port: int, more_nodes: tuple[int, ...] = ()) -> Path:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing (Debian package nginx-light)"
    cert, key = self_signed(tmp_path)
    site = (ROOT / "nginx.conf.example").read_text()
    for i, port in enumerate(more_nodes):  # the example's commented-out extra nodes
        site = site.replace(f"# server 127.0.0.1:{8001 + i} ", f"server 127.0.0.1:{port} ")
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


def start_nginx(conf: Path, prefix: Path, port: int) -> subprocess.Popen[bytes]:
    """nginx with `conf`, once it accepts connections on `port` (or after 5 s: the test then fails clearly)."""
    nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(prefix)],
                             start_new_session=True, stderr=subprocess.PIPE)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return nginx


def test_session_through_nginx_with_tls_and_a_path_prefix(tmp_path: Path) -> None:
    relay = Relay("--trust-proxy")
    https_port = free_port()
    conf = nginx_config(tmp_path, relay.port, https_port)
    nginx = start_nginx(conf, tmp_path, https_port)
    share = viewer = None
    try:
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


def test_cluster_nodes_behind_nginx_meet_on_one_home_per_session(tmp_path: Path) -> None:
    """The example's upstream block for several nodes: a session's clients all land on its home."""
    import json
    import re
    import urllib.request

    redis = RedisServer(tmp_path)
    nodes = [node(redis, "--trust-proxy") for _ in range(3)]
    https_port = free_port()
    conf = nginx_config(tmp_path, nodes[0].port, https_port, tuple(n.port for n in nodes[1:]))
    assert all(f"server 127.0.0.1:{n.port} " in (tmp_path / "site.conf").read_text() for n in nodes)
    nginx = start_nginx(conf, tmp_path, https_port)
    shares, viewers = [], []
    try:
        base = f"https://127.0.0.1:{https_port}/termshare/"
        cafile = str(tmp_path / "cert.pem")
        for i in range(4):  # several sessions, so that more than one node is likely to be a home
            share = HeadlessShare("--relay", base, "--cafile", cafile, "--cmd", f"sh -c 'echo session-{i}-up; sleep 30'")
            shares.append(share)
            for _ in range(2):
                viewer = termshare("join", share.links["read_only"], "--cafile", cafile, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
                viewers.append(viewer)
                assert viewer.stdout is not None
                read_until(viewer.stdout, f"session-{i}-up".encode(), 20)

        def metric(port: int, name: str, extra: str = "") -> float:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout(5)) as r:
                text = r.read().decode()
            (value,) = re.findall(rf'^{name}{{node="[^"]*"{extra}}} (\S+)$', text, re.M)
            return float(value)

        homes = {n.port: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{n.port}/healthz").read()) for n in nodes}
        assert sum(h["sessions"] for h in homes.values()) == 4
        assert sum(h["viewers"] for h in homes.values()) == 8
        # Every websocket of a session reached its home directly: nothing was proxied through Redis.
        for n in nodes:
            assert metric(n.port, "termshare_cluster_messages_total", ',direction="published"') == 0
            assert metric(n.port, "termshare_cluster_connections", ',direction="out"') == 0
    finally:
        for proc in [*viewers, *(s.proc for s in shares)]:
            stop(proc)
        stop(nginx)
        for n in nodes:
            n.close()
        redis.close()
