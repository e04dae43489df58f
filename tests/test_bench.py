"""The benchmark suite runs (on its tiny size) and writes every workload's figures.

This checks that `python -m bench.run` works end to end, never how fast anything is. TermPair, the
reference, is used only when its venv already exists (bench/.venv-termpair, made by a first full
run): setting it up takes longer than this test may.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("throughput", "echo", "fanout", "stalled", "idle", "startup", "footprint", "browser")
# termshare's headline figure in each workload: all must be numbers > 0.
HEADLINES = [
    ("throughput", "termshare", "mb_per_s"),
    ("throughput", "limit", "mb_per_s"),
    ("echo", "idle", "termshare", "p50_ms"),
    ("echo", "flood", "termshare", "p99_ms"),
    ("fanout", "1", "termshare", "aggregate_mb_per_s"),
    ("fanout", "5", "termshare", "relay_cpu_s_per_mb"),
    ("stalled", "termshare", "stalled", "others_mb_per_s"),
    ("idle", "termshare", "relay_rss_mb"),
    ("startup", "termshare", "seconds"),
    ("footprint", "termshare", "wire_per_byte"),
    ("footprint", "termshare", "share_rss_mb"),
]


@pytest.mark.timeout(120)
def test_bench_runs_tiny(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench.run", "--tiny", "--out", str(tmp_path)]
    if not (REPO / "bench" / ".venv-termpair" / "bin" / "termpair").exists():
        argv.append("--no-reference")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "workload" in proc.stdout and "termshare/TermPair" in proc.stdout  # the table was printed
    results = json.loads((tmp_path / "results.json").read_text())
    workloads = results["workloads"]
    for key in WORKLOADS:
        assert key in workloads, key
    assert workloads["browser"] is None
    for path in HEADLINES:
        node = workloads
        for key in path:
            node = node[key]
        assert node["median"] > 0, path
    assert (tmp_path / "results.png").stat().st_size > 0  # matplotlib comes with the test extra
    assert not results["meta"]["failures"]
