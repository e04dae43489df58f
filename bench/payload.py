"""The bytes the shared command writes: terminal-like text (words, colours, line ends), made once."""

from __future__ import annotations

import random
from pathlib import Path

_WORDS = ("build", "test", "relay", "viewer", "frame", "epoch", "session", "output", "ok", "FAILED",
          "warning:", "src/main.rs:42:7", "0x7ffd5a2c", "GET /api/v1/items 200", "[INFO]", "=>", "done")
_COLOURS = (b"\x1b[32m", b"\x1b[31m", b"\x1b[1;33m", b"\x1b[36m", b"\x1b[0m")


def _block(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.2:
            out += rng.choice(_COLOURS)
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14)))
        out += words.encode() + b"\x1b[0m\r\n"
    return bytes(out[:size])


def make(path: Path, size: int) -> Path:
    """A file of exactly `size` bytes (a 1 MiB block repeated), reused when it already exists."""
    if path.exists() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    block = _block(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            f.write(chunk)
            left -= len(chunk)
    return path
