"""Machine-checked layering (STYLE.md): the core does no I/O, the relay never loads crypto."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "termshare"
IO_MODULES = {"asyncio", "socket", "select", "selectors", "pty", "tty", "termios", "fcntl", "signal", "os",
              "subprocess", "threading", "time", "random", "secrets", "websockets", "starlette", "uvicorn",
              "aiohttp", "redis"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((PACKAGE / "protocol").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_io(path: Path) -> None:
    assert not imported_roots(path) & IO_MODULES


@pytest.mark.parametrize("module", ["termshare.protocol.router", "termshare.relay", "termshare.relay.cluster"])
def test_relay_never_loads_crypto(module: str) -> None:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "bad = [m for m in sys.modules if m.startswith('cryptography') or m in "
        "('termshare.protocol.keys', 'termshare.protocol.share', 'termshare.protocol.viewer')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
