"""The reference: TermPair 0.3.1.5 from PyPI, in its own Python 3.10 virtual environment.

TermPair pins uvloop 0.16.0 and httptools 0.4.0, which do not build on Python 3.11, so the venv is
made with `python3.10` (pyenv has it). When it cannot be set up, `setup()` says why in one line and
the bench goes on with termshare and the limit only.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VERSION = "0.3.1.5"
VENV = Path(__file__).resolve().parent / ".venv-termpair"


@dataclass
class Reference:
    available: bool
    reason: str = ""
    termpair: str = ""  # path of the `termpair` script
    python: str = ""


def _is_python310(path: str) -> bool:
    try:
        out = subprocess.run([path, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == "True"


def _python310(log: Callable[[str], None]) -> str | None:
    if chosen := os.environ.get("TERMPAIR_PYTHON"):
        if _is_python310(chosen):
            return chosen
        log(f"TERMPAIR_PYTHON={chosen} is not a Python 3.10 that runs; looking for another")
    candidates = [shutil.which("python3.10") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")), reverse=True)
    return next((path for path in candidates if path and os.path.exists(path) and _is_python310(path)), None)


def _installed() -> bool:
    script = VENV / "bin" / "termpair"
    if not script.exists():
        return False
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and VERSION in (out.stdout + out.stderr)


def setup(log: Callable[[str], None] = print) -> Reference:
    try:
        if not _installed():
            py = _python310(log)
            if py is None:
                return Reference(False, "no Python 3.10 found (TermPair 0.3.1.5 needs it; try pyenv install 3.10)")
            log(f"setting up TermPair {VERSION} in {VENV} with {py} (first run only)")
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([py, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120)
            pip = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"termpair=={VERSION}"],
                                 capture_output=True, text=True, timeout=600)
            if pip.returncode != 0:
                tail = (pip.stderr or pip.stdout).strip().splitlines()[-1:] or ["pip failed"]
                return Reference(False, f"pip install termpair=={VERSION} failed: {tail[0]}")
            if not _installed():
                return Reference(False, f"termpair {VERSION} installed but `termpair --version` does not run")
    except (OSError, subprocess.SubprocessError) as exc:
        return Reference(False, f"{type(exc).__name__}: {exc}")
    return Reference(True, termpair=str(VENV / "bin" / "termpair"), python=str(VENV / "bin" / "python"))
