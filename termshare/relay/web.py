"""Serving the static web app with strict headers (the secret never leaves location.hash)."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

WEB_DIR: Final = Path(__file__).parents[1] / "web"

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors *"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-cache",
}

PLACEHOLDER: Final = """<!doctype html><meta charset="utf-8"><title>termshare relay</title>
<h1>termshare relay</h1><p>The browser viewer is not built in this installation
(run <code>npm ci &amp;&amp; npm run build</code> in <code>webapp/</code>, or install from a wheel).
Use <code>termshare join LINK</code> in a terminal meanwhile.</p>"""


def _file(path: Path) -> Response:
    if not path.is_file():
        return HTMLResponse(PLACEHOLDER, headers=HEADERS) if path.suffix == ".html" else PlainTextResponse(
            "not found", 404, headers=HEADERS)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers=HEADERS)


def make_handlers(web_dir: Path) -> tuple:  # type: ignore[type-arg]
    async def index(request: Request) -> Response:
        return _file(web_dir / "index.html")

    async def session_page(request: Request) -> Response:
        return _file(web_dir / "session.html")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        target = (web_dir / "assets" / name).resolve()
        if not target.is_relative_to((web_dir / "assets").resolve()):
            return PlainTextResponse("not found", 404, headers=HEADERS)
        return _file(target)

    async def manifest(request: Request) -> Response:
        return _file(web_dir / "manifest.json")

    return index, session_page, asset, manifest
