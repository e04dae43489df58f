"""The local control socket of a running share: `termshare viewers` lists its viewers and
`termshare remove ID` removes one (docs/PROTOCOL.md: the sharer tells that viewer it was removed,
drops its channel and rotates the group key, so it cannot read what follows: §3.3 and §5.3).

Theory of operation
-------------------
Each share listens on a UNIX socket named after its session id, in a directory only the user can
enter: `$XDG_RUNTIME_DIR/termshare`, else `/tmp/termshare-<uid>`, created 0700 and refused when it
belongs to someone else or others may enter it. The shared program's environment carries the
session id (TERMSHARE_SESSION), so the commands find their share from inside the shared shell;
outside it they take `--session ID`, or the only share running. A request is one JSON object on a
line, the answer one line back:

    {"cmd": "viewers"}              -> {"viewers": [{"id": 3, "can_write": true, "joined": 1732...}]}
    {"cmd": "remove", "viewer": 3}  -> {"ok": true}  or  {"error": "no viewer 3"}

Anyone who can type into the shared shell (a read-write viewer) can run these commands too: they
can already run anything as you there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ..protocol.errors import TermshareError
from ..protocol.link import is_session_id

MAX_REQUEST: Final = 4096  # bytes of one request line
TIMEOUT: Final = 5.0  # seconds for the share to answer


class ControlError(TermshareError):
    pass


def control_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "termshare" if runtime and os.path.isdir(runtime) else Path(f"/tmp/termshare-{os.getuid()}")
    return base


def _private_dir(create: bool) -> Path:
    """The control directory, checked: ours, and nobody else's to enter."""
    path = control_dir()
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise ControlError("no share is running (no control directory)") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ControlError(f"{path} is not a private directory of yours: refusing to use it")
    return path


class ControlServer:
    """Serves requests to `handle(request) -> answer` on the session's socket until closed."""

    def __init__(self, sid: str, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path = _private_dir(create=True) / f"{sid}.sock"
        self._handle = handle
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a share that was killed
        handle = self._handle

        class Request(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: asyncio.Transport = transport  # type: ignore[assignment]
                self.buf = b""

            def data_received(self, data: bytes) -> None:
                self.buf += data
                if b"\n" not in self.buf and len(self.buf) < MAX_REQUEST:
                    return
                line = self.buf.split(b"\n", 1)[0][:MAX_REQUEST]
                try:
                    request = json.loads(line)
                    answer = handle(request) if isinstance(request, dict) else {"error": "a request is a JSON object"}
                except ValueError:
                    answer = {"error": "a request is one line of JSON"}
                self.transport.write(json.dumps(answer).encode() + b"\n")
                self.transport.close()

        old = os.umask(0o177)  # the socket is created 0600
        try:
            self._server = await asyncio.get_running_loop().create_unix_server(Request, str(self.path))
        finally:
            os.umask(old)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def find_socket(session: str | None) -> Path:
    """The control socket of `session` (a session id), of $TERMSHARE_SESSION, or of the only share."""
    session = session or os.environ.get("TERMSHARE_SESSION")
    if session and not is_session_id(session):
        raise ControlError(f"{session!r} is not a session id")
    folder = _private_dir(create=False)
    if session:
        path = folder / f"{session}.sock"
        if not path.exists():
            raise ControlError(f"no share of session {session} is running here")
        return path
    running = [path for path in sorted(folder.glob("*.sock")) if _alive(path)]
    if not running:
        raise ControlError("no share is running")
    if len(running) > 1:
        names = ", ".join(p.stem for p in running)
        raise ControlError(f"several shares are running ({names}): pick one with --session ID")
    return running[0]


def _alive(path: Path) -> bool:
    """False for a socket that a killed share left behind (it is removed)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except ConnectionRefusedError:
            with contextlib.suppress(OSError):
                path.unlink()
            return False
        except OSError:
            return False
    return True


def request(path: Path, message: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except OSError as exc:
            raise ControlError(f"the share of session {path.stem} does not answer ({exc.strerror or exc})") from None
    try:
        reply = json.loads(answer)
    except ValueError:
        raise ControlError(f"the share of session {path.stem} gave no answer") from None
    if not isinstance(reply, dict):
        raise ControlError("the share's answer is not a JSON object")
    return reply
