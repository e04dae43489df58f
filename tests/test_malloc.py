"""termshare.malloc: frame-sized buffers reuse heap memory instead of a fresh mapping each time."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A child handles 200 frames as a viewer does (a frame, its body, the plaintext, the message: four
# frame-sized buffers alive at once, then freed) and counts page faults: by default glibc gives
# the freed memory back each time and faults it in again, a fault per 4 KiB.
CHILD = """
import resource, sys
from termshare import malloc
if sys.argv[1] == "tuned":
    assert malloc.tune()
frame = bytes(200_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    copies = [bytearray(frame) for _ in range(4)]
    del copies
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, timeout=30)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_process_keeps_frames_on_the_heap() -> None:
    assert page_faults("default") > 200 * 40  # what the tuning is for: faults on every frame
    assert page_faults("tuned") < 1000  # the first frame's pages are reused
