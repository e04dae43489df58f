"""termshare.service with the documented sharer-token credential still verifies, and its hardening holds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..e2e.conftest import REPO

HARDENING = ("DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
             "PrivateDevices=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=", "SystemCallFilter=@system-service",
             "MemoryDenyWriteExecute=yes", "UMask=0077")


def test_unit_with_the_token_credential_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    unit = (REPO / "termshare.service").read_text()
    for setting in HARDENING:
        assert setting in unit, setting
    assert "#LoadCredential=share-tokens:/etc/termshare/share-tokens" in unit
    unit = unit.replace("#LoadCredential=", "LoadCredential=").replace(
        "--trust-proxy", "--trust-proxy --share-token-file ${CREDENTIALS_DIRECTORY}/share-tokens"
    ).replace("/usr/local/bin/termshare", sys.executable)
    (tmp_path / "termshare.service").write_text(unit)
    result = subprocess.run([analyze, "verify", str(tmp_path / "termshare.service")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
