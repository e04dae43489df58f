"""`python -m bench.frame_cost`: relay CPU per small frame (the figure docs/SCALING.md's estimate uses).

A shared command prints a short line every 0.5 ms (terminal-like small frames) and two `join`
viewers watch; the relay's CPU time over 10 s is divided by the frames it received plus the copies
it queued ("frame-hops").
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request

from tests.procs import HeadlessShare, Relay, stop, termshare

PRINTER = ("python3 -c \"import time,sys\nfor i in range(200000):\n"
           "  sys.stdout.write('x%d\\n' % i); sys.stdout.flush(); time.sleep(0.0005)\"")


def relay_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame_hops(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    pattern = r"termshare_frames_(?:received|relayed)_total\{[^}]*\} (\S+)"
    return sum(float(v) for v in re.findall(pattern, text))


def main() -> None:
    relay = Relay()
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", PRINTER)
    viewers = [termshare("join", share.links["read_only"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL) for _ in range(2)]
    try:
        time.sleep(3)
        cpu0, hops0 = relay_cpu(relay.proc.pid), frame_hops(relay.port)
        time.sleep(10)
        cpu, hops = relay_cpu(relay.proc.pid) - cpu0, frame_hops(relay.port) - hops0
        print(f"relay CPU {cpu:.2f} s for {hops:.0f} frame-hops: {cpu / hops * 1e6:.0f} us per frame-hop")
    finally:
        for viewer in viewers:
            stop(viewer)
        share.close()
        relay.close()


if __name__ == "__main__":
    main()
