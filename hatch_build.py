"""Hatchling build hook: bundle the browser viewer (webapp/) into termshare/web/ before packaging.

termshare/web/ is generated (and gitignored). When building a wheel or sdist from a source checkout,
this hook runs `npm ci` (only if webapp/node_modules is missing) and `npm run build` in webapp/,
unless every built file is already newer than every source file. Building a wheel from an sdist
that already contains termshare/web/ needs no Node.js at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# What the bundle is built from (relative to webapp/); node_modules is covered by package-lock.json.
_SOURCES = ("src", "build.mjs", "index.html", "session.html", "package.json", "package-lock.json")
# What `npm run build` writes (relative to termshare/web/).
_OUTPUTS = ("index.html", "session.html", "manifest.json", "assets/app.js", "assets/app.css")


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            for sub in path.rglob("*"):
                if sub.is_file():
                    newest = max(newest, sub.stat().st_mtime)
        elif path.is_file():
            newest = max(newest, path.stat().st_mtime)
    return newest


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        webapp = root / "webapp"
        web = root / "termshare" / "web"
        if not (webapp / "package.json").is_file():
            # Building from an sdist without webapp/ sources: the bundle must already be there.
            if not (web / "index.html").is_file():
                raise RuntimeError("termshare/web/ is missing and webapp/ sources are not available to build it")
            return
        if os.environ.get("TERMSHARE_SKIP_WEBAPP_BUILD") == "1" and (web / "index.html").is_file():
            return
        outputs = [web / name for name in _OUTPUTS]
        if all(p.is_file() for p in outputs):
            oldest_output = min(p.stat().st_mtime for p in outputs)
            if oldest_output >= _newest_mtime([webapp / name for name in _SOURCES]):
                self.app.display_info("termshare: web viewer bundle is up to date")
                return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "building termshare needs Node.js and npm to bundle the web viewer (webapp/ -> termshare/web/); "
                "install Node.js >= 18 (e.g. `apt-get install nodejs npm`), or build from an sdist that "
                "already contains termshare/web/"
            )
        if not (webapp / "node_modules").is_dir():
            self.app.display_info("termshare: npm ci (webapp/)")
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=webapp, check=True)
        self.app.display_info("termshare: npm run build (webapp/ -> termshare/web/)")
        subprocess.run([npm, "run", "build"], cwd=webapp, check=True)
