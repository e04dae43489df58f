"""Workload 8: the web app in headless Chromium, rendering a flood while staying responsive.

One page per run (Playwright, Debian's chromium, never a downloaded browser). The shared command
waits on a FIFO, then writes `size` bytes of the payload and a sentinel line, then runs `cat`:

* MB/s rendered = size / (gate opened -> the sentinel is in the terminal's buffer on screen). The
  page is looked at every POLL seconds with `page.evaluate`, and each look is also a
  responsiveness sample: its round trip is how long the page's main thread kept Python waiting.
* frame gaps: a requestAnimationFrame loop in the page records the time between frames meanwhile.
* echo: after the flood, keystrokes typed into the page (Playwright's keyboard) to `cat`, time until
  the character is on the page's screen. That figure includes Playwright's own latency (sending the
  key, then polling the screen with `page.evaluate`: 6-16 ms on the limit page, where xterm.js
  echoes the key itself in under 1 ms), so the same keystrokes are also timed inside the page with
  performance.now() (0.1 ms steps in a page that is not cross-origin isolated): from the page's
  keydown event (a capture listener on window, before xterm.js turns it into onData) to the write
  callback of the xterm.js write that holds the echoed character (it has been parsed into the
  terminal's buffer; it is drawn at the next animation frame). termshare's page reports its writes
  through `window.termshare.onWritten`; on TermPair's frontend and on the limit page the bench wraps
  the `write` method of the Terminal it reached, which their code calls on that object.
  The figure is not frame-aligned, but Chromium can make it so: when a frame is pending as a key
  event ends, it holds every task of the page (the websocket message with the echo included) until
  that frame has run (DeferRendererTasksAfterInput). A page that draws every frame while focused
  (xterm.js's DOM renderer blinking the cursor) pays ~8 ms of that per keystroke; so the rAF loop
  of the frame gaps is stopped before the keystrokes. The limit page writes its echo within the
  keydown task, before any of that.

termshare's page is read through its test hook (`window.termshare.screenText()`); TermPair's
frontend keeps its xterm.js Terminal in a webpack module, which the bench reaches through the
webpack chunk queue (read only, but for the echo timing's wrapper). The limit is xterm.js itself
(the version the web app bundles, from webapp/node_modules) writing the same bytes in the same
Chromium, with the web app's flow control (4 MiB in flight, resume at 1 MiB) and the same renderer
the web app picked. Its echo is local (xterm.js onData -> write), so its in-page echo is the floor
of xterm.js itself: what a key costs with no network, relay, shell or cryptography.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from . import procs
from .systems import Relay, sh
from .workloads import _pct

MB = 1_000_000
# The same flags as tests/browser/conftest.py.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 800}
XTERM = procs.REPO / "webapp" / "node_modules" / "@xterm"
POLL = 0.02  # s between two looks at the page
ECHO_KEY = "z"  # the payload (bench/payload.py) never contains it
CHUNK = 64 * 1024  # bytes per term.write() on the limit page
READY_TIMEOUT = 20.0  # s for a page to go live

# -- JavaScript run in the pages (as functions: termshare's CSP forbids eval'd strings) -------------
_RAF_START = """() => {
  const gaps = window.__benchGaps = [];
  let last = performance.now();
  window.__benchRaf = true;
  const tick = () => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    if (window.__benchRaf) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
# termshare's page decrypts every output frame it draws with WebCrypto: the plaintext it gets is the
# output it draws (plus a few header bytes a frame). Frames skipped by a resync are never decrypted.
_COUNT_DECRYPTED = """(() => {
  const decrypt = SubtleCrypto.prototype.decrypt;
  window.__benchDecrypted = 0;
  SubtleCrypto.prototype.decrypt = async function (...args) {
    const out = await decrypt.apply(this, args);
    window.__benchDecrypted += out.byteLength;
    return out;
  };
})();"""
_DECRYPTED = "() => window.__benchDecrypted || 0"
# In-page echo timing (see the docstring): when the page saw each ECHO_KEY keydown, and when each
# echoed ECHO_KEY had been parsed by xterm.js. Returns false if the page offers no way to know.
_ECHO_HOOK = """({key, termshare}) => {
  const rec = window.__benchEcho = {keys: [], written: []};
  const code = key.charCodeAt(0);
  const seen = (data) => {
    const now = performance.now();
    for (let i = data.indexOf(typeof data === 'string' ? key : code); i >= 0;
         i = data.indexOf(typeof data === 'string' ? key : code, i + 1)) rec.written.push(now);
  };
  if (termshare) {
    if (typeof window.termshare.onWritten !== 'function') return false;
    window.termshare.onWritten(seen);
  } else {
    const term = window.__benchTerm;
    const write = term.write;
    term.write = function (data, callback) {
      return write.call(this, data, () => { seen(data); if (callback) callback(); });
    };
  }
  window.addEventListener('keydown', (ev) => { if (ev.key === key) rec.keys.push(performance.now()); }, true);
  return true;
}"""
_ECHO_RECORD = "() => window.__benchEcho"
_RAF_STOP = "() => { window.__benchRaf = false; return window.__benchGaps || []; }"
_SCREEN_HELPER = """() => {
  window.__benchScreen = (t) => {
    const b = t.buffer.active;
    const lines = [];
    for (let y = 0; y < t.rows; y++) {
      const line = b.getLine(b.baseY + y);
      lines.push(line ? line.translateToString(true) : '');
    }
    return lines.join('\\n');
  };
}"""
# TermPair 0.3.1.5 keeps `new Terminal(...)` in a module export; webpack 4's chunk queue runs a
# module of ours that is handed `__webpack_require__`, whose cache holds every module's exports.
_TP_FIND = """() => {
  if (window.__benchTerm) return true;
  const queue = window.webpackJsonptermpairjs;
  if (!queue) return false;
  const id = 'bench-probe-' + Math.random();
  let req = null;
  queue.push([[id], { [id]: (m, e, r) => { req = r; } }, [[id]]]);
  for (const mod of Object.values(req ? req.c : {})) {
    const ex = mod && mod.exports;
    if (!ex || typeof ex !== 'object') continue;
    for (const key of Object.keys(ex)) {
      let v;
      try { v = ex[key]; } catch { continue; }
      if (v && typeof v.write === 'function' && v.buffer && v.buffer.active) { window.__benchTerm = v; return true; }
    }
  }
  return false;
}"""
# The web app's terminal options (webapp/src/ui/terminal.js) that change the drawing work; the font
# size is then chosen so that the screen is as wide as the web app's was (it fits the window).
_FONTS = ('ui-monospace, "SF Mono", "Cascadia Mono", "Cascadia Code", "JetBrains Mono", "Fira Code", '
          '"Source Code Pro", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", "Noto Sans Mono", monospace')
_LIMIT_SETUP = """async ({b64, webgl, size, chunk, sentinel, width, fonts}) => {
  const el = document.createElement('div');
  document.body.style.margin = '0';
  document.body.append(el);
  const term = new Terminal({cols: 80, rows: 24, scrollback: 2000, fontSize: 18, lineHeight: 1.0,
                             fontFamily: fonts, minimumContrastRatio: 1});
  term.open(el);
  let renderer = 'dom';
  if (webgl && window.WebglAddon) {
    try { term.loadAddon(new WebglAddon.WebglAddon()); renderer = 'webgl'; } catch (e) { renderer = 'dom'; }
  }
  term.options.cursorBlink = renderer === 'webgl';  // as the web app: the DOM renderer's blink draws every frame
  const screen = el.querySelector('.xterm-screen');
  for (let f = 18; width && f > 8 && screen.offsetWidth > width; f--) {
    term.options.fontSize = f - 1;
    await new Promise((r) => requestAnimationFrame(r));
  }
  window.__benchTerm = term;
  term.onData((d) => term.write(d));  // local echo: the floor of the echo figure
  const raw = atob(b64);
  const block = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) block[i] = raw.charCodeAt(i);
  window.__benchStart = () => {
    // The web app's flow control (webapp/src/net/session.js): pause above 4 MiB in flight, resume at 1 MiB.
    const HIGH = 4 * 1024 * 1024, LOW = 1024 * 1024;
    let pending = 0, wake = null;
    const written = (n) => () => {
      pending -= n;
      if (wake && pending <= LOW) { const w = wake; wake = null; w(); }
    };
    (async () => {
      for (let p = 0; p < size;) {
        const off = p % block.length;
        const n = Math.min(chunk, block.length - off, size - p);
        pending += n;
        term.write(block.subarray(off, off + n), written(n));
        p += n;
        if (pending > HIGH) await new Promise((r) => { wake = r; });
      }
      term.write('\\r\\n' + sentinel + '\\r\\n');
    })();
  };
  return [renderer, term.options.fontSize, screen.offsetWidth];
}"""


def _has(screen: str) -> str:
    return f"(s) => ({screen}).includes(s)"


def _count(screen: str) -> str:
    return f"(k) => ({screen}).split(k).length - 1"


_TS_SCREEN = "window.termshare.screenText()"
_TERM_SCREEN = "window.__benchScreen(window.__benchTerm)"


def unavailable() -> str | None:
    """Why the browser workload cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright for Python is not installed ({exc}; pip install -e '.[test]')"
    if shutil.which("chromium") is None:
        return "no `chromium` on PATH (Debian: apt-get install chromium)"
    return None


def limit_unavailable() -> str | None:
    if not (XTERM / "xterm" / "lib" / "xterm.js").exists():
        return f"no xterm.js in {XTERM} (cd webapp && npm ci)"
    return None


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def _page(browser: Any) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page in a fresh context, and the uncaught errors it reports."""
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page, errors
    finally:
        await context.close()


class _Wire:
    """Websocket traffic of a page (Playwright relays every frame anyway): bytes received, frames sent."""

    def __init__(self, page: Any) -> None:
        self.received = 0
        self.sent = 0
        self.aes_keys = asyncio.Event()  # TermPair: the page got its session keys
        page.on("websocket", self._attach)

    def _attach(self, ws: Any) -> None:
        ws.on("framereceived", self._received)
        ws.on("framesent", self._sent)

    def _received(self, payload: str | bytes) -> None:
        self.received += len(payload)
        if isinstance(payload, str) and not self.aes_keys.is_set() and '"aes_keys"' in payload:
            self.aes_keys.set()

    def _sent(self, payload: str | bytes) -> None:
        self.sent += 1

    def reset(self) -> None:
        self.received = self.sent = 0


def _open_gate(fifo: Path, timeout: float) -> None:
    """Write one byte into the FIFO the shared command waits on (once the command has it open)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise procs.BenchError(f"the shared command never opened its gate: {exc}") from None
            time.sleep(0.002)
            continue
        try:
            os.write(fd, b"g")
        finally:
            os.close(fd)
        return


async def _watch(page: Any, check: str, sentinel: str, t0: float, timeout: float) -> tuple[float, list[float]]:
    """Look at the page every POLL s until `check(sentinel)` holds: (seconds since t0, round trips)."""
    rtts: list[float] = []
    deadline = t0 + timeout
    while True:
        t = time.perf_counter()
        left = deadline - t
        if left <= 0:
            raise procs.BenchError(f"the page did not show the end of the output within {timeout:.0f} s")
        try:
            found = await asyncio.wait_for(page.evaluate(check, sentinel), left)
        except TimeoutError:
            raise procs.BenchError(f"the page did not answer for {left:.1f} s (frozen)") from None
        now = time.perf_counter()
        rtts.append(now - t)
        if found:
            return now - t0, rtts
        await asyncio.sleep(max(0.0, t + POLL - time.perf_counter()))


async def _echo(page: Any, count_js: str, n: int, interval: float) -> tuple[list[float], int]:
    """`n` keystrokes into the page, one every `interval` s: time until each is on the page's screen."""
    await page.focus(".xterm-helper-textarea")
    base = await page.evaluate(count_js, ECHO_KEY)
    samples: list[float] = []
    lost = 0
    for i in range(n):
        t0 = time.perf_counter()
        await page.keyboard.press(ECHO_KEY)
        while True:
            if await page.evaluate(count_js, ECHO_KEY) >= base + i + 1:
                samples.append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > 2.0:
                lost += 1
                break
        await asyncio.sleep(max(0.0, t0 + interval - time.perf_counter()))
    return samples, lost


async def _echo_in_page(page: Any, count_js: str, n: int, interval: float, termshare: bool) -> dict[str, Any]:
    """`_echo`, timed by Playwright and, where the page allows, inside the page (see the docstring)."""
    hooked = await page.evaluate(_ECHO_HOOK, {"key": ECHO_KEY, "termshare": termshare})
    out = _echo_figures(*await _echo(page, count_js, n, interval))
    if not hooked:
        out["echo_page_unavailable"] = "the page has no window.termshare.onWritten (an older build)"
        return out
    rec = await page.evaluate(_ECHO_RECORD)
    keys, written = rec["keys"], rec["written"]
    # cat echoes in order, so the i-th echoed key answers the i-th keydown; a lost echo (counted in
    # echo_lost) leaves the two lists of different lengths, and then the figure is not computed.
    out["echo_page_keys"], out["echo_page_echoes"] = len(keys), len(written)
    if keys and len(keys) == len(written):
        samples_ms = sorted(w - k for k, w in zip(keys, written, strict=True))
        out["echo_page_p50_ms"] = _pct(samples_ms, 50)
        out["echo_page_p99_ms"] = _pct(samples_ms, 99)
    return out


def _figures(size: int, seconds: float, rtts: list[float], gaps_ms: list[float]) -> dict[str, Any]:
    rtts = sorted(rtts)
    gaps = sorted(gaps_ms)
    return {
        "mb_per_s": size / max(seconds, 1e-9) / MB,
        "seconds": seconds,
        "bytes": size,
        "eval_p50_ms": _pct(rtts, 50) * 1000,
        "eval_p99_ms": _pct(rtts, 99) * 1000,
        "eval_max_ms": rtts[-1] * 1000,
        "eval_samples": len(rtts),
        "frame_gap_p99_ms": _pct(gaps, 99) if gaps else 0.0,
        "frame_gap_max_ms": gaps[-1] if gaps else 0.0,
        "frames": len(gaps),
    }


def _echo_figures(samples: list[float], lost: int) -> dict[str, Any]:
    samples = sorted(samples)
    if not samples:
        return {"echo_lost": lost}
    return {"echo_p50_ms": _pct(samples, 50) * 1000, "echo_p99_ms": _pct(samples, 99) * 1000, "echo_lost": lost}


# -- a system's own web app ------------------------------------------------------------------------
async def web_app(browser: Any, system: Any, relay: Relay, file: Path, size: int, timeout: float,
                  echo_n: int, echo_interval: float) -> dict[str, Any]:
    """termshare's web app (from the relay) or TermPair's frontend (from its server) on one share."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    fifo = tmp / "gate"
    os.mkfifo(fifo)
    sentinel = f"BENCH-END-{os.urandom(4).hex()}"
    script = f"head -c1 {shlex.quote(str(fifo))} >/dev/null; head -c {size} {shlex.quote(str(file))}; printf '\\r\\n%s\\r\\n' {sentinel}; exec cat"
    share = system.start_share(relay, sh(script))
    try:
        async with _page(browser) as (page, errors):
            wire = _Wire(page)
            if system.name == "termshare":
                await page.add_init_script(_COUNT_DECRYPTED)
            await page.goto(share.url)
            if system.name == "termshare":
                await page.wait_for_function("() => window.termshare && window.termshare.state() === 'live'",
                                             timeout=READY_TIMEOUT * 1000)
                screen = _TS_SCREEN
                renderer = await page.evaluate("() => document.querySelector('.xterm-screen canvas') ? 'webgl' : 'dom'")
                width = await page.evaluate("() => document.querySelector('.xterm-screen').offsetWidth")
            else:
                await asyncio.wait_for(wire.aes_keys.wait(), READY_TIMEOUT)
                await page.evaluate(_SCREEN_HELPER)
                await page.wait_for_function(_TP_FIND, timeout=READY_TIMEOUT * 1000)
                await asyncio.sleep(0.5)  # the page imports its keys (WebCrypto) after they arrive
                screen, renderer = _TERM_SCREEN, "canvas"
                width = await page.evaluate("() => document.querySelector('.xterm-screen').offsetWidth")
            await page.evaluate(_RAF_START)
            wire.reset()
            decrypted0 = await page.evaluate(_DECRYPTED)
            t0 = time.perf_counter()
            await asyncio.to_thread(_open_gate, fifo, 10)
            seconds, rtts = await _watch(page, _has(screen), sentinel, t0, timeout)
            gaps = await page.evaluate(_RAF_STOP)
            out = _figures(size, seconds, rtts, gaps)
            decrypted = await page.evaluate(_DECRYPTED) - decrypted0
            if system.name != "termshare":
                out["drawn_fraction"] = 1.0  # TermPair's frontend writes every message it gets: it never skips
            elif decrypted:
                out["drawn_fraction"] = decrypted / size
            if "drawn_fraction" in out:
                out["drawn_mb_per_s"] = out["mb_per_s"] * out["drawn_fraction"]
            out["page_ws_mb"] = wire.received / MB
            # termshare's page sends nothing upstream during a flood unless it fell behind and asked
            # for a new screen (RESYNC, PROTOCOL.md §4.3): then some output was skipped, not drawn.
            out["upstream_frames"] = wire.sent
            out["renderer"] = renderer
            out["screen_width_px"] = width
            if echo_n:
                out |= await _echo_in_page(page, _count(screen), echo_n, echo_interval, system.name == "termshare")
            if errors:
                out["page_errors"] = errors[:5]
            return out
    finally:
        share.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- the limit: xterm.js alone ---------------------------------------------------------------------
async def xterm_alone(browser: Any, file: Path, size: int, timeout: float, webgl: bool, echo_n: int,
                      echo_interval: float, width: int = 0) -> dict[str, Any]:
    """The bundled xterm.js version writing the same bytes (64 KiB writes) in a blank page; then
    keystrokes echoed by the page itself (xterm.js onData -> write): what typing costs the harness."""
    with open(file, "rb") as f:
        block = f.read(min(size, 1 << 20))  # the payload file is one 1 MiB block repeated
    sentinel = f"BENCH-END-{os.urandom(4).hex()}"
    async with _page(browser) as (page, _errors):
        await page.set_content("<!doctype html><html><head><meta charset='utf-8'></head><body></body></html>")
        await page.add_style_tag(path=str(XTERM / "xterm" / "css" / "xterm.css"))
        await page.add_script_tag(path=str(XTERM / "xterm" / "lib" / "xterm.js"))
        if webgl and (XTERM / "addon-webgl" / "lib" / "addon-webgl.js").exists():
            await page.add_script_tag(path=str(XTERM / "addon-webgl" / "lib" / "addon-webgl.js"))
        renderer, font, px = await page.evaluate(_LIMIT_SETUP, {
            "b64": base64.b64encode(block).decode(), "webgl": webgl, "size": size, "chunk": CHUNK,
            "sentinel": sentinel, "width": width, "fonts": _FONTS})
        await page.evaluate(_SCREEN_HELPER)
        await asyncio.sleep(0.3)  # first paint
        await page.evaluate(_RAF_START)
        t0 = time.perf_counter()
        await page.evaluate("() => window.__benchStart()")
        seconds, rtts = await _watch(page, _has(_TERM_SCREEN), sentinel, t0, timeout)
        gaps = await page.evaluate(_RAF_STOP)
        out = _figures(size, seconds, rtts, gaps) | {"renderer": renderer, "font_px": font, "screen_width_px": px,
                                                     "drawn_fraction": 1.0, "drawn_mb_per_s": size / seconds / MB}
        if echo_n:
            out |= await _echo_in_page(page, _count(_TERM_SCREEN), echo_n, echo_interval, False)
        return out
