"""asciicast v2 recordings (the format `asciinema play` reads)."""

from __future__ import annotations

import codecs
import json
import time
from typing import IO


class Recording:
    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._start: float | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _elapsed(self) -> float:
        assert self._start is not None
        return round(time.monotonic() - self._start, 6)

    def _line(self, value: object) -> None:
        self._file.write(json.dumps(value, ensure_ascii=False) + "\n")
        self._file.flush()

    def screen(self, cols: int, rows: int, data: bytes) -> None:
        if self._start is None:
            self._start = time.monotonic()
            self._line({"version": 2, "width": cols, "height": rows, "timestamp": int(time.time()),
                        "env": {"TERM": "xterm-256color"}, "title": "termshare"})
        else:
            self._line([self._elapsed(), "r", f"{cols}x{rows}"])
        self.output(b"\x1bc" + data)

    def resize(self, cols: int, rows: int) -> None:
        if self._start is not None:
            self._line([self._elapsed(), "r", f"{cols}x{rows}"])

    def output(self, data: bytes) -> None:
        if self._start is None:
            return
        text = self._decoder.decode(data)
        if text:
            self._line([self._elapsed(), "o", text])

    def close(self) -> None:
        self._file.close()
