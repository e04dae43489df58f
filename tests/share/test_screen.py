"""The snapshot repaints the same screen on a fresh terminal, and the model never blocks output."""

from __future__ import annotations

import pyte

from termshare.share.screen import BACKLOG_CAP, Screen, emulator


def replay(cols: int, rows: int, data: bytes) -> pyte.Screen:
    """A terminal that honours the alternate screen, as xterm.js and real terminals do."""
    screen = emulator(cols, rows)
    pyte.ByteStream(screen).feed(data)
    return screen


def test_snapshot_reproduces_text_colours_cursor_and_modes() -> None:
    source = Screen(40, 6)
    stream = (b"plain \x1b[1;31mbold red\x1b[0m \x1b[38;2;1;2;3mtrue\x1b[0m\r\n"
              b"\x1b[44m blue bg \x1b[0m\r\n\xc3\xa9t\xc3\xa9 \xe2\x9c\x93\r\n\x1b[?1h\x1b[?2004h\x1b[5;7Hcursor")
    source.feed(stream)
    cols, rows, data = source.snapshot()
    copy = replay(cols, rows, data)
    original = replay(40, 6, stream)
    assert copy.display == original.display
    assert (copy.cursor.x, copy.cursor.y) == (original.cursor.x, original.cursor.y)
    for y in range(3):
        for x in range(40):
            a, b = copy.buffer[y][x], original.buffer[y][x]
            assert (a.data, a.fg, a.bg, a.bold) == (b.data, b.fg, b.bg, b.bold), (x, y)
    assert (1 << 5) in copy.mode and (2004 << 5) in copy.mode


def test_feed_is_cheap_and_bounded_under_bulk_output() -> None:
    screen = Screen(80, 24)
    line = b"x" * 79 + b"\r\n"
    for i in range(20_000):  # 1.6 MB, far past the backlog cap
        screen.feed(line if i != 19_999 else b"the last line\r\n")
        assert len(screen._backlog) <= BACKLOG_CAP
    assert "the last line" in "\n".join(replay(*screen.snapshot()).display)


def test_resize_keeps_content() -> None:
    screen = Screen(20, 5)
    screen.feed(b"hello")
    screen.resize(30, 8)
    cols, rows, data = screen.snapshot()
    assert (cols, rows) == (30, 8)
    assert replay(cols, rows, data).display[0].startswith("hello")


def test_alternate_screen_is_kept_apart_from_the_main_screen() -> None:
    screen = Screen(30, 5)
    screen.feed(b"$ vim notes.txt\r\n")
    screen.feed(b"\x1b[?1049h\x1b[H\x1b[2J~ editing\x1b[3;1H~ more")
    cols, rows, data = screen.snapshot()
    during = replay(cols, rows, data)
    assert during.display[0].startswith("~ editing") and "$ vim" not in "\n".join(during.display)
    # The late joiner's terminal returns to the main screen when vim exits, like the sharer's.
    after_exit = replay(cols, rows, data + b"\x1b[?1049l")
    assert after_exit.display[0].startswith("$ vim notes.txt")
    screen.feed(b"\x1b[?1049l$ ")
    assert replay(*screen.snapshot()).display[0].startswith("$ vim notes.txt")


def test_sequences_pyte_cannot_parse_do_not_break_the_model() -> None:
    screen = Screen(30, 5)
    screen.feed(b"before\x1b[>4;2m after \x1b[?u\x1b[=5u ok")
    assert "after" in replay(*screen.snapshot()).display[0]


def test_huge_colourful_screen_still_fits_one_snapshot_frame() -> None:
    from termshare.protocol.share import MAX_SNAPSHOT_DATA

    screen = Screen(1000, 1000)
    row = b"".join(b"\x1b[38;2;%d;2;3m\xe2\x96\x88" % (i % 256) for i in range(1000))
    screen.feed(b"\r\n".join([row] * 40) + b"\r\nlast line")
    cols, rows, data = screen.snapshot()
    assert (cols, rows) == (1000, 1000) and len(data) <= MAX_SNAPSHOT_DATA
    assert b"last line" in data
    small = Screen(20, 3)
    small.feed(b"\x1b[31mred\x1b[0m")
    assert b"\x1b[0;31m" in small.snapshot()[2]  # colours kept when they fit
