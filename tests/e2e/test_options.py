"""Smaller options of the product: --qr, --version, python -m termshare, help texts."""

from __future__ import annotations

import subprocess

import segno

from .conftest import Procs, Relay, start_pty_share, termshare, timeout


def test_qr_code_encodes_the_link(procs: Procs, shared_relay: Relay) -> None:
    share, links = start_pty_share(procs, shared_relay, "--qr")
    # The banner carries the QR code of the read-write link, drawn with half-block characters.
    expected = segno.make(links["rw"], error="l")
    assert expected.symbol_size(border=0)[0] > 20
    banner = share.tail(20000)
    assert "▀" in banner or "█" in banner
    rows = [line for line in share.screen_lines() if "▀" in line or "█" in line or "▄" in line]
    assert len(rows) >= expected.symbol_size(border=0)[0] // 2


def test_version_and_module_entry_point() -> None:
    out = subprocess.run(termshare("--version"), capture_output=True, text=True, timeout=timeout())
    assert out.returncode == 0 and out.stdout.startswith("termshare ") and "protocol 1" in out.stdout
    for command in ("serve", "share", "join"):
        helped = subprocess.run(termshare(command, "--help"), capture_output=True, text=True, timeout=timeout())
        assert helped.returncode == 0 and f"usage: termshare {command}" in helped.stdout
    bare = subprocess.run(termshare(), capture_output=True, text=True, timeout=timeout())
    assert bare.returncode == 2 and "serve" in bare.stdout
