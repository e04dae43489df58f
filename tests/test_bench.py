"""The benchmark suite runs (on its tiny size) and writes every workload's figures.

This checks that `python -m bench.run` works end to end, never how fast anything is. TermPair, the
reference, is used only when its venv already exists (bench/.venv-termpair, made by a first full
run): setting it up takes longer than this test may.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("throughput", "echo", "fanout", "stalled", "idle", "startup", "footprint", "browser", "cluster")
# termshare's headline figure in each workload: all must be numbers > 0.
HEADLINES = [
    ("throughput", "termshare", "mb_per_s"),
    ("throughput", "limit", "mb_per_s"),
    ("throughput", "termshare", "machine_cpu_ms_per_mb"),
    ("throughput", "limit", "mb_per_s_all_cores_busy"),
    ("echo", "idle", "termshare", "p50_ms"),
    ("echo", "flood", "termshare", "p99_ms"),
    ("echo", "keystroke_cpu", "warm_ms"),
    ("echo", "keystroke_cpu", "cold_ms"),
    ("fanout", "1", "termshare", "aggregate_mb_per_s"),
    ("fanout", "5", "termshare", "aggregate_mb_per_s"),
    ("stalled", "termshare", "stalled", "others_mb_per_s"),
    ("stalled", "termshare", "slow", "others_mb_per_s"),
    ("stalled", "termshare", "slow", "slow_caught_up"),  # 1: the slow viewer got the final screen and status
    ("stalled", "termshare", "slow", "slow_lag_s"),
    ("idle", "termshare", "relay_rss_mb"),
    ("startup", "termshare", "seconds"),
    ("footprint", "termshare", "wire_per_byte"),
    ("footprint", "termshare", "share_rss_mb"),
    ("footprint", "limit", "libraries_rss_mb"),
]
# Required where their tools are installed (Playwright + chromium; redis-server), as in tests/browser
# and tests/cluster; elsewhere the results must say why they are missing.
BROWSER = [
    ("browser", "termshare", "mb_per_s"),
    ("browser", "termshare", "eval_p99_ms"),
    ("browser", "termshare", "echo_p50_ms"),
    ("browser", "limit", "mb_per_s"),
]
CLUSTER = [
    ("cluster", "in_memory", "fanout", "aggregate_mb_per_s"),
    ("cluster", "1", "fanout", "aggregate_mb_per_s"),
    ("cluster", "2", "fanout", "aggregate_mb_per_s"),
    ("cluster", "2", "echo", "p50_ms"),
    ("cluster", "2", "sessions", "sessions_held"),
    ("cluster", "2", "sessions", "node_rss_mb"),
]
HAS_BROWSER = importlib.util.find_spec("playwright") is not None and shutil.which("chromium") is not None
HAS_REDIS = shutil.which("redis-server") is not None


@pytest.mark.timeout(180)
def test_bench_runs_tiny(tmp_path: Path) -> None:
    tmp_path = tmp_path / "a dir; with $pace"  # the shared commands name files in it: quoted, not split
    argv = [sys.executable, "-m", "bench.run", "--tiny", "--out", str(tmp_path)]
    if not (REPO / "bench" / ".venv-termpair" / "bin" / "termpair").exists():
        argv.append("--no-reference")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "workload" in proc.stdout and "termshare/TermPair" in proc.stdout  # the table was printed
    results = json.loads((tmp_path / "results.json").read_text())
    workloads = results["workloads"]
    for key in WORKLOADS:
        assert key in workloads, key
    headlines = list(HEADLINES)
    for name, present, paths in (("browser", HAS_BROWSER, BROWSER), ("cluster", HAS_REDIS, CLUSTER)):
        if present:
            headlines += paths
        else:
            assert workloads[name].get("unavailable"), workloads[name]
    for path in headlines:
        node = workloads
        for key in path:
            node = node[key]
        assert node["median"] > 0, path
    # CPU s/MB of a 5 MB tiny fan-out can round to 0 (10 ms clock ticks): present, not positive.
    assert workloads["fanout"]["5"]["termshare"]["relay_cpu_s_per_mb"]["median"] >= 0
    assert (tmp_path / "results.png").stat().st_size > 0  # matplotlib comes with the test extra
    # TermPair's other viewers may freeze behind its stalled or slow one: a finding about the reference
    reference = re.compile(r"(stalled|slow) viewer \[termpair\]: \d+ viewer\(s\) short of bytes without a resync")
    assert not [f for f in results["meta"]["failures"] if not reference.fullmatch(f)], results["meta"]["failures"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "throughput,nonsense"], "no workload named nonsense"),
        (["--only", ""], "no workload given"),
        (["--only", " , "], "no workload given"),
        (["--out", "{file}"], "--out"),
        (["--out", ""], "--out: an empty path"),
        (["--out", "{dir}"], "results.json there is not a file"),
        (["--tiny", "--quick"], "not allowed with"),
    ],
)
def test_bench_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    (tmp_path / "out" / "results.json").mkdir(parents=True)
    argv = [a.replace("{file}", str(file)).replace("{dir}", str(tmp_path / "out")) for a in args]
    proc = subprocess.run([sys.executable, "-m", "bench.run", *argv], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (REPO / "bench" / "results" / "payload.bin").exists()  # refused before any work


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass  # gone meanwhile, or not ours to read
    return found


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("sig", "message"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "stopped by SIGTERM")])
def test_bench_interrupted_stops_everything(tmp_path: Path, sig: signal.Signals, message: str) -> None:
    """Ctrl-C (or a kill) mid-run: a one-line message, exit 128 + signal, and no relay, sharer or
    viewer left running."""
    marker = f"TERMSHARE_BENCH_TEST={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--tiny", "--no-reference", "--only", "echo,fanout", "--out", str(tmp_path)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background job may inherit it ignored
    )
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:  # until the run is in its first workload, with processes up
        seen += line
        if "echo idle [limit]" in line:
            break
    time.sleep(0.5)
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, seen + rest
    assert message in rest and "Traceback" not in rest and "FAILED" not in rest, seen + rest
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "payload.bin").exists()
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_with(marker)
