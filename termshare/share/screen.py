"""The sharer's screen model, for late joiners and resyncs (docs/PROTOCOL.md §5.3 SNAPSHOT).

pyte is a pure-Python emulator: measured here at about 0.4 MB/s, against hundreds of MB/s of PTY
output, so it must never sit on the output path. `feed()` only appends to a bounded backlog; the
backlog is parsed when the session is idle (`catch_up`) or when a snapshot is needed. If output
outruns the backlog cap (a `cat` of a big file), the emulator restarts from the most recent bytes,
which for streaming output is exactly what the screen shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..protocol.share import MAX_SNAPSHOT_DATA

if TYPE_CHECKING:
    import pyte

BACKLOG_CAP: Final = 256 * 1024  # bytes kept unparsed before the emulator restarts from the tail
RESTART_TAIL: Final = 32 * 1024  # bytes replayed into a restarted emulator
SLICE: Final = 4 * 1024  # bytes parsed per idle step, so the event loop never stalls

_COLORS: Final = {"black": 0, "red": 1, "green": 2, "brown": 3, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7}
_BRIGHT: Final = {"bright" + name: code for name, code in _COLORS.items()}
# Private modes worth carrying to a late joiner: cursor keys, mouse reporting, bracketed paste.
_PRIVATE_MODES: Final = (1, 1000, 1002, 1003, 1005, 1006, 2004)


def _color(value: str, base: int) -> list[str]:
    if value == "default":
        return []
    if value in _COLORS:
        return [str(base + _COLORS[value])]
    if value in _BRIGHT:
        return [str(base + 60 + _BRIGHT[value])]
    if len(value) == 6:
        try:
            r, g, b = int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
        except ValueError:
            return []
        return [str(base + 8), "2", str(r), str(g), str(b)]
    return []


def _sgr(char: pyte.screens.Char) -> str:
    params = ["0"]
    if char.bold:
        params.append("1")
    if char.italics:
        params.append("3")
    if char.underscore:
        params.append("4")
    if char.blink:
        params.append("5")
    if char.reverse:
        params.append("7")
    if char.strikethrough:
        params.append("9")
    params += _color(char.fg, 30) + _color(char.bg, 40)
    return "\x1b[" + ";".join(params) + "m"


class Screen:
    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self._backlog = bytearray()
        self._stale = True  # the emulator is made when the backlog is first parsed

    def _new_emulator(self) -> None:
        self._screen = emulator(self.cols, self.rows)
        import pyte  # imported on first use: keeps `share` start-up and resting memory small

        self._stream = pyte.ByteStream(self._screen)

    def feed(self, data: bytes | memoryview) -> None:
        if len(self._backlog) + len(data) <= BACKLOG_CAP:
            self._backlog += data
            return
        if len(data) >= RESTART_TAIL:  # bulk output: copy only the tail that will be kept
            self._backlog[:] = memoryview(data)[-RESTART_TAIL:]
        else:
            self._backlog += data
            del self._backlog[:-RESTART_TAIL]
        self._stale = True  # a fresh emulator is made when the backlog is parsed

    def resize(self, cols: int, rows: int) -> None:
        self.catch_up()
        self.cols, self.rows = cols, rows
        if not self._stale:
            self._screen.resize(rows, cols)

    @property
    def behind(self) -> bool:
        return bool(self._backlog)

    def catch_up(self, limit: int | None = None) -> None:
        """Parse up to `limit` backlog bytes (all when None)."""
        if self._stale:
            self._stale = False
            self._new_emulator()
        if not self._backlog:
            return
        n = len(self._backlog) if limit is None else min(limit, len(self._backlog))
        chunk = bytes(self._backlog[:n])
        del self._backlog[:n]
        try:
            self._stream.feed(chunk)
        except Exception:  # noqa: BLE001 - any program output must not take the share down
            # pyte chokes on a few sequences; start over from what follows rather than fail.
            self._new_emulator()

    def snapshot(self, limit: int = MAX_SNAPSHOT_DATA) -> tuple[int, int, bytes]:
        """(cols, rows, bytes that repaint this screen on a freshly reset terminal), at most
        `limit` bytes: a huge screen full of colours falls back to plain text, then to its
        bottom rows, rather than to no snapshot at all.

        In a full-screen program's alternate screen, the main screen is painted first and the
        alternate one on top, so that the viewer gets the main screen back when the program exits.
        """
        self.catch_up()
        data = self._render(colours=True, first_row=0)
        if len(data) > limit:
            data = self._render(colours=False, first_row=0)
        first_row = 0
        while len(data) > limit and first_row < self._screen.lines - 1:
            first_row += max(1, (self._screen.lines - first_row) // 10)
            data = self._render(colours=False, first_row=first_row)
        return self._screen.columns, self._screen.lines, data

    def _render(self, colours: bool, first_row: int) -> bytes:
        screen = self._screen
        out = ["\x1b[0m\x1b[H\x1b[2J"]
        if screen.saved_main is not None and colours:
            _paint(out, screen.saved_main, range(screen.lines), screen.columns, colours)
            out.append("\x1b[?1049h\x1b[H\x1b[2J")
        _paint(out, screen.buffer, range(first_row, screen.lines), screen.columns, colours)
        modes = screen.mode
        for mode in _PRIVATE_MODES:
            if (mode << 5) in modes:
                out.append(f"\x1b[?{mode}h")
        out.append(f"\x1b[{screen.cursor.y + 1};{screen.cursor.x + 1}H")
        if screen.cursor.hidden:
            out.append("\x1b[?25l")
        return "".join(out).encode("utf-8", "replace")


def _paint(out: list[str], buffer: Any, rows: range, columns: int, colours: bool) -> None:
    for y in rows:
        line = buffer[y]
        out.append(f"\x1b[{y + 1};1H")
        last = ""
        text_end = max((x + 1 for x, ch in line.items() if ch.data not in (" ", "") or ch.bg != "default" or ch.reverse), default=0)
        for x in range(min(text_end, columns)):
            char = line[x]
            if colours:
                sgr = _sgr(char)
                if sgr != last:
                    out.append(sgr)
                    last = sgr
            out.append(char.data)
        if colours:
            out.append("\x1b[0m")


_ALT_SCREEN: Final = (47, 1047, 1049)


def emulator(cols: int, rows: int) -> Any:
    """A pyte Screen that also keeps the alternate screen (pyte has none): vim, less, htop and
    tmux switch to it, and a late joiner must see the main screen again when they exit."""
    import collections
    import copy

    import pyte

    class AltScreen(pyte.Screen):
        saved_main: Any = None
        _saved_cursor: Any = None

        def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
            if not private:  # `CSI > 4;2 m` (modifyOtherKeys, sent by vim) is not a colour
                super().select_graphic_rendition(*attrs)

        def set_mode(self, *modes: int, **kwargs: Any) -> None:
            if kwargs.get("private") and any(m in _ALT_SCREEN for m in modes) and self.saved_main is None:
                factory = self.buffer.default_factory  # type: ignore[attr-defined]  # a defaultdict at run time
                saved: Any = collections.defaultdict(factory)
                for y, row in self.buffer.items():
                    saved[y].update(row)  # rows keep their default (blank) character
                self.saved_main = saved
                self._saved_cursor = copy.copy(self.cursor)
                self.buffer.clear()
                self.dirty.update(range(self.lines))
            super().set_mode(*modes, **kwargs)

        def reset_mode(self, *modes: int, **kwargs: Any) -> None:
            if kwargs.get("private") and any(m in _ALT_SCREEN for m in modes) and self.saved_main is not None:
                self.buffer.clear()
                for y, row in self.saved_main.items():
                    self.buffer[y].update(row)
                if 1049 in modes:
                    self.cursor = self._saved_cursor
                self.saved_main = None
                self.dirty.update(range(self.lines))
            super().reset_mode(*modes, **kwargs)

    return AltScreen(cols, rows)
