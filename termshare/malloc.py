"""glibc's malloc, set for a process that moves frames of up to 1 MiB.

By default glibc serves each allocation over its mmap threshold (128 KiB at start, raised only by
the sizes it has freed) with a fresh mmap, and gives heap memory back once 128 KiB is free at the
top. A 200 KiB frame then costs a page fault per 4 KiB each time it is copied, decrypted or
parsed: in a viewer that was half of its CPU per frame. Keeping frames on the heap, and up to
TRIM bytes of it mapped between frames, halves that. Elsewhere (musl, macOS) nothing changes.
"""

from __future__ import annotations

import contextlib
from typing import Final

from .protocol.wire import MAX_FRAME

M_TRIM_THRESHOLD: Final = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD: Final = -3
MMAP: Final = 2 * MAX_FRAME  # a whole frame and its copies come from the heap
TRIM: Final = 4 * MAX_FRAME  # at most this much free memory stays mapped at the heap's top


def tune() -> bool:
    """Set the thresholds; False where the C library has no mallopt, or Python no ctypes (it is
    only a speed-up)."""
    with contextlib.suppress(ImportError, OSError, AttributeError):
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
        return bool(mallopt(M_MMAP_THRESHOLD, MMAP)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM))
    return False
