"""A headless TermPair 0.3.1.5 browser client, written here from TermPair's observed protocol.

What a TermPair browser does (learned by reading its relay and sharer and watching the traffic):
* The link is `<base>/?terminal_id=<id>#<bootstrap key, standard base64 of 16 bytes>`.
* It opens `ws(s)://<host>/connect_browser_to_terminal?terminal_id=<id>`; every message is a JSON
  text frame `{"event": ..., "payload": ...}`.
* It sends `{"event": "new_browser_connected", "payload": {}}`; the relay passes it to the sharer,
  which broadcasts `aes_keys` with `b64_bootstrap_unix_aes_key` and `b64_bootstrap_browser_aes_key`
  (each base64 of `iv(12) || AES-GCM(bootstrap key, key)`) plus `iv_count`/`max_iv_count`, the
  window of IV counters this browser may use for its input.
* Output arrives as `new_output`: payload = base64(iv(12) || AES-GCM(unix key, JSON
  `{"pty_output": base64(bytes), "salt": ...}`)).
* Keystrokes go as `{"event": "command", "payload": base64(iv || AES-GCM(browser key, JSON
  {"data": text, "salt": ...}))}`.
* `num_clients` and `resize` are clear-text notices. The session ends when the relay closes.

Run as `python -m bench.termpair_client drain URL SECONDS` it reads and decrypts a session's output
for at most SECONDS (the flooding viewer of the latency workload, in its own process).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .viewer import WebsocketsViewer, close_websocket

_IV = 12


def _open(aead: AESGCM, blob: bytes) -> bytes:
    return aead.decrypt(blob[:_IV], blob[_IV:], None)


class TpViewer(WebsocketsViewer):
    system = "termpair"

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urlsplit(url)
        self.terminal_id = parse_qs(parts.query)["terminal_id"][0]
        self.bootstrap = AESGCM(base64.b64decode(parts.fragment))
        self.ws_url = f"ws://{parts.netloc}/connect_browser_to_terminal?terminal_id={self.terminal_id}"
        self.unix: AESGCM | None = None
        self.browser: AESGCM | None = None
        self.iv_count = 0
        self.max_iv_count = 0
        # snapshots stay 0 (TermPair has no late-join screen); broken counts frames that failed to decrypt

    async def _connect(self) -> ClientConnection:
        # A browser cannot send websocket pings: none here either.
        ws = await connect(self.ws_url, max_size=None, compression=None, open_timeout=20, ping_interval=None)
        await ws.send(json.dumps({"event": "new_browser_connected", "payload": {}}))
        return ws

    async def _handle(self, message: str | bytes) -> bool:
        self._on_message(json.loads(message))
        return False

    def _on_message(self, msg: dict[str, object]) -> None:
        event, payload = msg.get("event"), msg.get("payload")
        if event == "new_output":
            if self.unix is None or not isinstance(payload, str):
                return  # sent before our keys arrived: a browser drops these too
            try:
                inner = json.loads(_open(self.unix, base64.b64decode(payload)))
            except Exception:  # noqa: BLE001 - a frame we cannot open is counted, not fatal
                self.broken += 1
                return
            self._output(len(base64.b64decode(inner["pty_output"])))
        elif event in ("aes_keys", "aes_key_rotation") and isinstance(payload, dict):
            if event == "aes_keys" and self.unix is not None:
                return  # another browser joined: the keys are the same
            opener = self.bootstrap if event == "aes_keys" else self.unix
            assert opener is not None
            name = "b64_bootstrap_unix_aes_key" if event == "aes_keys" else "b64_aes_secret_unix_key"
            self.unix = AESGCM(_open(opener, base64.b64decode(payload[name])))
            name = name.replace("unix", "browser")
            self.browser = AESGCM(_open(opener, base64.b64decode(payload[name])))
            if "iv_count" in payload:
                self.iv_count = int(payload["iv_count"])
                self.max_iv_count = int(payload["max_iv_count"])
            self.live.set()

    async def send_input(self, data: bytes) -> None:
        assert self.ws is not None and self.browser is not None
        self.iv_count += 1
        iv = self.iv_count.to_bytes(_IV, "little")
        plaintext = json.dumps({"data": data.decode(), "salt": base64.b64encode(os.urandom(12)).decode()})
        blob = iv + self.browser.encrypt(iv, plaintext.encode(), None)
        await self.ws.send(json.dumps({"event": "command", "payload": base64.b64encode(blob).decode()}))


class TpIdleSharer:
    """A TermPair sharer without a PTY, for the idle-cost workload: registers and stays quiet."""

    def __init__(self, base: str) -> None:
        self.netloc = urlsplit(base).netloc
        self.ws: ClientConnection | None = None
        self.terminal_id = ""
        self._task: asyncio.Task[None] | None = None
        self.bootstrap_key = AESGCM.generate_key(128)

    @property
    def read_only_url(self) -> str:
        key = base64.b64encode(self.bootstrap_key).decode()
        return f"http://{self.netloc}/?terminal_id={self.terminal_id}#{key}"

    async def start(self) -> None:
        self.ws = await connect(f"ws://{self.netloc}/connect_to_terminal", max_size=None, compression=None,
                                open_timeout=20, ping_interval=20, ping_timeout=20)
        await self.ws.send(json.dumps({"rows": 24, "cols": 80, "allow_browser_control": False, "command": "idle",
                                       "broadcast_start_time_iso": "2024-01-01T00:00:00+00:00",
                                       "subprotocol_version": "3"}))
        reply = json.loads(await asyncio.wait_for(self.ws.recv(), 20))
        self.terminal_id = reply["payload"]
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for _ in self.ws:
                pass  # new_browser_connected: an idle sharer does not hand out keys

    async def close(self) -> None:
        await close_websocket(self._task, self.ws)


class TpIdleViewer(TpViewer):
    """A browser that joined a session whose sharer never sends keys: it only holds the socket."""

    async def start(self) -> None:
        await super().start()
        self.live.set()


async def _drain(url: str, seconds: float) -> None:
    viewer = TpViewer(url)
    await viewer.start()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(viewer.done.wait(), seconds)
    await viewer.close()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "drain":
        sys.exit("usage: python -m bench.termpair_client drain URL SECONDS")
    asyncio.run(_drain(sys.argv[2], float(sys.argv[3])))
