"""`join` with stdout to a file writes the decrypted stream; `--record` writes asciicast v2."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Procs, Relay, start_json_share, termshare, timeout


def test_join_to_file_and_record(procs: Procs, shared_relay: Relay, tmp_path: Path) -> None:
    share, links = start_json_share(procs, shared_relay.url)
    stream, cast = tmp_path / "stream.bin", tmp_path / "session.cast"
    viewer = procs.pipe(termshare("join", links["read_only"], "--record", str(cast)), name="join-file",
                        stdout_path=stream)
    share.wait_event("viewer_joined", timeout())
    share.write("printf 'rec-%s\\n' $((8*8))\n")
    viewer.wait_stdout(rb"\r\nrec-64\r\n", timeout())
    share.write("exit 0\n")
    assert share.wait(timeout()) == 0
    assert viewer.wait(timeout()) == 0

    # The file holds the decrypted terminal stream: the shell's echo of the command and its output.
    data = stream.read_bytes()
    assert b"printf 'rec-%s\\n' $((8*8))" in data
    assert b"\r\nrec-64\r\n" in data
    assert b"exit 0" in data
    assert b"\x1bc" not in data  # not a terminal: no reset sequences, just the stream

    lines = cast.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert isinstance(header, dict)
    assert header["version"] == 2
    assert header["width"] == 80 and header["height"] == 24  # share's size when it has no terminal
    assert isinstance(header.get("timestamp", 0), int)
    events = [json.loads(line) for line in lines[1:]]
    assert events, "the recording has no events"
    last = 0.0
    for event in events:
        assert isinstance(event, list) and len(event) == 3, event
        time_, code, text = event
        assert isinstance(time_, int | float) and time_ >= last, event
        assert code == "o" and isinstance(text, str), event  # no resize happened, so only output
        last = time_
    played = "".join(text for _, _, text in events)
    assert "\r\nrec-64\r\n" in played
    # Playing the recording shows exactly what join wrote (after the reset before the first screen).
    assert played == "\x1bc" + data.decode("utf-8")
    # asciinema itself accepts the file: `asciinema cat` replays it (without timing) to stdout.
    import subprocess
    import sys

    replayed = subprocess.run([sys.executable, "-m", "asciinema", "cat", str(cast)], capture_output=True, timeout=30)
    assert replayed.returncode == 0, replayed.stderr
    assert b"rec-64" in replayed.stdout
