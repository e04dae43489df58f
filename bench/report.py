"""The table, results.json and results.png (matplotlib, if installed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SYSTEMS = ("termshare", "termpair", "limit")


# Figures derived from a process's CPU time, and the CPU seconds each derives from. CPU time comes
# in 10 ms clock ticks: a run that measured fewer than CPU_TICKS of them (a tiny run) has no figure.
CPU_DERIVED = {"relay_cpu_s_per_mb": "relay_cpu_s", "relay_mb_per_cpu_s": "relay_cpu_s",
               "relay_cpu_share": "relay_cpu_s", "cpu_s_per_min": "cpu_s",  # one relay
               "cpu_s_per_mb": "cpu_s", "cpu_us_per_frame": "cpu_s", "nodes_cpu_share": "cpu_s",  # cluster
               "redis_cpu_s_per_mb": "redis_cpu_s", "redis_cpu_s_per_min": "redis_cpu_s",
               "node_cpu_s_per_min": "node_cpu_s"}
CPU_TICKS = 0.05


def _stat(node: Any, *path: str) -> dict[str, float] | None:
    parent: dict[str, Any] = {}
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        parent, node = node, node[key]
    if (raw := CPU_DERIVED.get(path[-1])) and isinstance(cpu := parent.get(raw), dict) and cpu["median"] < CPU_TICKS:
        return None
    return node if isinstance(node, dict) and "median" in node else None


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    w = results["workloads"]
    spec: list[tuple[str, str, tuple[str, ...]]] = []  # (workload, metric, path to the system level, metric key last)
    spec.append(("throughput", "MB/s to 1 viewer", ("throughput", "{s}", "mb_per_s")))
    spec.append(("throughput", "machine CPU ms per MB (all processes)", ("throughput", "{s}", "machine_cpu_ms_per_mb")))
    spec.append(("throughput", "CPU cores busy", ("throughput", "{s}", "cores_busy")))
    for cond in ("idle", "flood"):
        spec.append((f"echo ({cond})", "p50 ms", ("echo", cond, "{s}", "p50_ms")))
        spec.append((f"echo ({cond})", "p99 ms", ("echo", cond, "{s}", "p99_ms")))
    for n in w.get("fanout", {}):
        spec.append((f"fan-out {n}", "aggregate MB/s", ("fanout", n, "{s}", "aggregate_mb_per_s")))
        spec.append((f"fan-out {n}", "relay CPU s/MB", ("fanout", n, "{s}", "relay_cpu_s_per_mb")))
        spec.append((f"fan-out {n}", "relay MB/s per CPU core (1 / CPU s/MB)", ("fanout", n, "{s}", "relay_mb_per_cpu_s")))
        spec.append((f"fan-out {n}", "viewers with every byte", ("fanout", n, "{s}", "complete_viewers")))
        spec.append((f"fan-out {n}", "viewers resynced (fell behind, by design)", ("fanout", n, "{s}", "resynced_viewers")))
        spec.append((f"fan-out {n}", "viewers short without a resync (should be 0)", ("fanout", n, "{s}", "incomplete_unexplained")))
        spec.append((f"fan-out {n}", "CPU cores: relay", ("fanout", n, "{s}", "relay_cpu_share")))
        spec.append((f"fan-out {n}", "CPU cores: viewers (bench)", ("fanout", n, "{s}", "viewers_cpu_share")))
    spec.append(("stalled viewer", "others' MB/s, none stalled", ("stalled", "{s}", "baseline", "others_mb_per_s")))
    spec.append(("stalled viewer", "others' MB/s, 1 stalled", ("stalled", "{s}", "stalled", "others_mb_per_s")))
    spec.append(("stalled viewer", "slowest other MB/s, 1 stalled", ("stalled", "{s}", "stalled", "slowest_other_mb_per_s")))
    spec.append(("stalled viewer", "slowest other MB/s, none stalled", ("stalled", "{s}", "baseline", "slowest_other_mb_per_s")))
    spec.append(("stalled viewer", "others resynced (fell behind, by design), 1 stalled", ("stalled", "{s}", "stalled", "others_resynced")))
    spec.append(("stalled viewer", "others short without a resync (should be 0), 1 stalled", ("stalled", "{s}", "stalled", "incomplete_unexplained")))
    spec.append(("stalled viewer", "relay RSS growth MB, none stalled", ("stalled", "{s}", "baseline", "relay_rss_growth_mb")))
    spec.append(("stalled viewer", "relay RSS growth MB, 1 stalled", ("stalled", "{s}", "stalled", "relay_rss_growth_mb")))
    spec.append(("slow viewer", "others' MB/s, 1 reading 2 MB/s", ("stalled", "{s}", "slow", "others_mb_per_s")))
    spec.append(("slow viewer", "s it has the end after the others", ("stalled", "{s}", "slow", "slow_lag_s")))
    spec.append(("slow viewer", "it got the end (1 = yes)", ("stalled", "{s}", "slow", "slow_caught_up")))
    spec.append(("slow viewer", "wire bytes it got per payload byte", ("stalled", "{s}", "slow", "slow_wire_per_byte")))
    idle = w.get("idle", {})
    label = f"idle {idle.get('sessions', '?')}x{idle.get('viewers_per_session', '?')}"
    spec.append((label, "relay RSS MB", ("idle", "{s}", "relay_rss_mb")))
    spec.append((label, "relay CPU s/min", ("idle", "{s}", "cpu_s_per_min")))
    spec.append(("start-up", "s to link", ("startup", "{s}", "seconds")))
    spec.append(("footprint", "wire bytes / terminal byte", ("footprint", "{s}", "wire_per_byte")))
    spec.append(("footprint", "share RSS MB at rest", ("footprint", "{s}", "share_rss_mb")))
    spec.append(("footprint", "share RSS MB peak (bulk)", ("footprint", "{s}", "share_rss_peak_mb")))
    out = [_row(workload, metric, *(_stat(w, *(p.format(s=s) for p in path)) for s in SYSTEMS))
           for workload, metric, path in spec if path[0] in w]  # (--only: the rest was not run)
    if _stat(w, "throughput", "termshare", "mb_per_s_all_cores_busy"):  # what its CPU per MB allows, against the limit's rate
        at = next(i for i, r in enumerate(out) if r["metric"] == "CPU cores busy") + 1
        out.insert(at, _row("throughput", "MB/s at that CPU/MB on every core; limit = its MB/s",
                            _stat(w, "throughput", "termshare", "mb_per_s_all_cores_busy"),
                            _stat(w, "throughput", "termpair", "mb_per_s_all_cores_busy"),
                            _stat(w, "throughput", "limit", "mb_per_s")))
    if _stat(w, "echo", "idle", "floor", "p50_ms"):  # the same termshare figure against bench/floor.py's
        at = next(i for i, r in enumerate(out) if r["workload"] == "echo (idle)") + 2
        out[at:at] = [_row("echo (idle)", f"{p} ms; limit = 3-process asyncio floor", _stat(w, "echo", "idle", "termshare", key),
                           None, _stat(w, "echo", "idle", "floor", key)) for p, key in (("p50", "p50_ms"), ("p99", "p99_ms"))]
    if _stat(w, "echo", "keystroke_cpu", "warm_ms"):  # termshare's own work per keystroke, I/O left out
        at = max(i for i, r in enumerate(out) if r["workload"] == "echo (idle)") + 1
        pause = w["echo"]["interval_ms"]
        out[at:at] = [_row("echo (idle)", f"protocol CPU ms/key, no I/O, {when}", _stat(w, "echo", "keystroke_cpu", key), None, None)
                      for when, key in (("back to back", "warm_ms"), (f"{pause:g} ms idle before each party", "cold_ms"))]
    if _stat(w, "footprint", "limit", "libraries_rss_mb"):  # the same termshare figure against what its libraries hold
        at = next(i for i, r in enumerate(out) if r["metric"] == "share RSS MB at rest") + 1
        out.insert(at, _row("footprint", "share RSS MB at rest; limit = interpreter + asyncio + cryptography",
                            _stat(w, "footprint", "termshare", "share_rss_mb"), None, _stat(w, "footprint", "limit", "libraries_rss_mb")))
    out += _browser_rows(w.get("browser"))
    out += _cluster_rows(w.get("cluster"))
    return out


def _row(workload: str, metric: str, ts: Any, tp: Any, lim: Any) -> dict[str, Any]:
    return {"workload": workload, "metric": metric, "termshare": ts, "termpair": tp, "limit": lim,
            "termshare/termpair": ts["median"] / tp["median"] if ts and tp and tp["median"] else None,
            "termshare/limit": ts["median"] / lim["median"] if ts and lim and lim["median"] else None}


def _unavailable(workload: str, node: Any) -> list[dict[str, Any]]:
    reason = (node.get("unavailable") or node.get("error")) if isinstance(node, dict) else "not run"
    return [_row(workload, f"not measured: {reason}", None, None, None)]


BROWSER_METRICS = [
    ("MB/s, gate -> last line on screen", "mb_per_s"),
    ("share of the output drawn (rest skipped)", "drawn_fraction"),
    ("MB/s drawn", "drawn_mb_per_s"),
    ("page round trip p99 ms (flood)", "eval_p99_ms"),
    ("page round trip max ms (flood)", "eval_max_ms"),
    ("frame gap max ms (flood)", "frame_gap_max_ms"),
    ("echo p50 ms (Playwright: key -> screen)", "echo_p50_ms"),
    ("echo p99 ms (Playwright: key -> screen)", "echo_p99_ms"),
    ("echo p50 ms (in page: key -> written)", "echo_page_p50_ms"),
    ("echo p99 ms (in page: key -> written)", "echo_page_p99_ms"),
]


def _browser_rows(b: Any) -> list[dict[str, Any]]:
    if b is None:
        return []
    if "unavailable" in b:
        return _unavailable("browser", b)
    return [_row("browser", metric, *(_stat(b, s, key) for s in SYSTEMS)) for metric, key in BROWSER_METRICS]


# (metric, part, key); in cluster rows the termshare column is the cluster and the limit column one
# in-memory relay (the ratio is what Redis and the extra nodes cost or give).
CLUSTER_METRICS = [
    ("fan-out aggregate MB/s", "fanout", "aggregate_mb_per_s"),
    ("fan-out viewers with every byte", "fanout", "complete_viewers"),
    ("fan-out viewers resynced (fell behind, by design)", "fanout", "resynced_viewers"),
    ("fan-out viewers short without a resync (should be 0)", "fanout", "incomplete_unexplained"),
    ("fan-out CPU s/MB (nodes+Redis)", "fanout", "cpu_s_per_mb"),
    ("fan-out CPU us/frame (nodes+Redis)", "fanout", "cpu_us_per_frame"),
    ("fan-out CPU cores: nodes", "fanout", "nodes_cpu_share"),
    ("fan-out CPU cores: viewers (bench)", "fanout", "viewers_cpu_share"),
    ("echo p50 ms (viewer on last node)", "echo", "p50_ms"),
    ("echo p99 ms (viewer on last node)", "echo", "p99_ms"),
    ("idle sessions held", "sessions", "sessions_held"),
    ("idle: RSS MB per node (max)", "sessions", "node_rss_mb"),
    ("idle: CPU s/min per node (max)", "sessions", "node_cpu_s_per_min"),
    ("idle: Redis RSS MB", "sessions", "redis_rss_mb"),
]


def _cluster_rows(c: Any) -> list[dict[str, Any]]:
    if c is None:
        return []
    if "unavailable" in c or "error" in c:
        return _unavailable("cluster", c)
    out = []
    for n in c.get("nodes", []):
        label = f"cluster {n} node{'s' if n > 1 else ''}"
        if "error" in c.get(str(n), {}):
            out += _unavailable(label, c[str(n)])
            continue
        for metric, part, key in CLUSTER_METRICS:
            if key == "redis_rss_mb":
                out.append(_row(label, metric, _stat(c, str(n), part, key), None, None))
            else:
                out.append(_row(label, metric, _stat(c, str(n), part, key), None, _stat(c, "in_memory", part, key)))
    return out


def _num(x: float) -> str:
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _cell(stat: dict[str, float] | None) -> str:
    if stat is None:
        return "-"
    if stat["min"] == stat["max"]:
        return _num(stat["median"])
    return f"{_num(stat['median'])} [{_num(stat['min'])}-{_num(stat['max'])}]"


def table(rows_: list[dict[str, Any]], ref: Any) -> str:
    head = ["workload", "metric", "termshare", "TermPair", "limit", "termshare/TermPair", "termshare/limit"]
    lines = []
    for r in rows_:
        tp_ratio = r["termshare/termpair"]
        lim_ratio = r["termshare/limit"]
        lines.append([r["workload"], r["metric"], _cell(r["termshare"]),
                      _cell(r["termpair"]) if ref.available else "n/a", _cell(r["limit"]),
                      f"{tp_ratio:.2f}x" if tp_ratio is not None else "n/a",
                      f"{lim_ratio:.2f}x" if lim_ratio is not None else "n/a"])
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    text = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    text += [fmt.format(*line) for line in lines]
    text.append("cells: median [min-max] over repeats; MB = 10^6 bytes; '-' = no such figure (or CPU time below 5 clock ticks)")
    if any(r["workload"].startswith("cluster") for r in rows_):
        text.append("cluster rows: termshare = nodes on Redis, limit = one in-memory relay (no --redis), same load")
    if not ref.available:
        text.append(f"reference unavailable: {ref.reason}")
    return "\n".join(text)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def chart(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    w = results["workloads"]
    colors = {"termshare": "tab:blue", "termpair": "tab:orange", "limit": "tab:gray"}
    fig, axes = plt.subplots(3, 4, figsize=(18, 12))
    meta = results["meta"]
    only = "" if meta.get("only") == "all" else f" of {', '.join(meta.get('only', []))}"
    fig.suptitle(f"termshare vs TermPair 0.3.1.5 vs the limit ({meta['mode']} run{only}, {meta['cpus']} CPUs)")

    def bars(ax: Any, title: str, getter: Any, log: bool = False) -> None:
        names, meds, cols = [], [], []
        errs: list[list[float]] = [[], []]
        for s in SYSTEMS:
            st = getter(s)
            if st is None:
                continue
            names.append(s)
            meds.append(st["median"])
            errs[0].append(st["median"] - st["min"])
            errs[1].append(st["max"] - st["median"])
            cols.append(colors[s])
        ax.bar(names, meds, yerr=errs, color=cols, capsize=4)
        for i, m in enumerate(meds):
            ax.annotate(_num(m), (i, m), ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
        if log and meds and min(meds) > 0:
            ax.set_yscale("log")

    bars(axes[0][0], "throughput, MB/s (log)", lambda s: _stat(w, "throughput", s, "mb_per_s"), log=True)
    ax = axes[0][1]
    labels, x = [], 0
    for cond in ("idle", "flood"):
        for metric in ("p50_ms", "p99_ms"):
            for i, s in enumerate(SYSTEMS):
                st = _stat(w, "echo", cond, s, metric)
                if st:
                    ax.bar(x + i * 0.27, st["median"], 0.27, color=colors[s], label=s if x == 0 else None)
            labels.append(f"{cond} {metric[:3]}")
            x += 1
    ax.set_xticks([i + 0.27 for i in range(len(labels))], labels, fontsize=8)
    ax.set_title("keystroke echo, ms", fontsize=10)
    _legend(ax)
    ax = axes[0][2]
    for s in ("termshare", "termpair"):
        stats = [(int(n), _stat(w, "fanout", n, s, "aggregate_mb_per_s")) for n in w.get("fanout", {})]
        pts = [(n, st["median"]) for n, st in stats if st]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", color=colors[s], label=s)
    ax.set_xlabel("viewers")
    ax.set_yscale("log")
    ax.set_title("fan-out: aggregate MB/s (log)", fontsize=10)
    _legend(ax)
    ax = axes[0][3]
    for s in ("termshare", "termpair"):
        series = w.get("stalled", {}).get(s, {}).get("stalled", {}).get("runs", [{}])
        series = series[0].get("rss_series") if series else None
        if series:
            ax.plot([t for t, _ in series], [b for _, b in series], color=colors[s], label=s)
    ax.set_title("relay RSS MB with a stalled viewer", fontsize=10)
    ax.set_xlabel("s")
    _legend(ax)
    bars(axes[1][0], "idle sessions: relay RSS MB", lambda s: _stat(w, "idle", s, "relay_rss_mb"))
    bars(axes[1][1], "idle sessions: relay CPU s/min", lambda s: _stat(w, "idle", s, "cpu_s_per_min"))
    bars(axes[1][2], "start-up: s to link", lambda s: _stat(w, "startup", s, "seconds"))
    bars(axes[1][3], "share process RSS MB at rest", lambda s: _stat(w, "footprint", s, "share_rss_mb"))
    b = w.get("browser") or {}
    bars(axes[2][0], "browser: MB/s drawn (log; limit = xterm.js alone)", lambda s: _stat(b, s, "drawn_mb_per_s"), log=True)
    ax = axes[2][1]
    keys = [("eval_p99_ms", "evaluate p99"), ("eval_max_ms", "evaluate max"), ("frame_gap_max_ms", "frame gap"),
            ("echo_p50_ms", "echo p50"), ("echo_page_p50_ms", "echo p50 in page")]
    for x, (key, _) in enumerate(keys):
        for i, s in enumerate(SYSTEMS):
            st = _stat(b, s, key)
            if st:
                ax.bar(x + i * 0.27, st["median"], 0.27, color=colors[s], label=s if x == 0 else None)
    ax.set_xticks([i + 0.27 for i in range(len(keys))], [label for _, label in keys], fontsize=8)
    ax.set_title("browser: responsiveness during the flood, ms", fontsize=10)
    _legend(ax)
    c = w.get("cluster") or {}
    ax = axes[2][2]
    _cluster_line(ax, c, "fanout", "aggregate_mb_per_s", "aggregate MB/s", colors["termshare"])
    ax.set_ylim(bottom=0)
    ax.set_title(f"cluster: fan-out to {c.get('viewers', '?')} viewers, MB/s (dashed: in-memory)", fontsize=10)
    ax = axes[2][3]
    _cluster_line(ax, c, "echo", "p50_ms", "echo p50 ms", "tab:green")
    _cluster_line(ax, c, "echo", "p99_ms", "echo p99 ms", "tab:red")
    _cluster_line(ax, c, "sessions", "node_rss_mb", "idle RSS MB/node", "tab:purple")
    ax.set_title(f"cluster: echo ms, RSS/node with {c.get('sessions', '?')} idle sessions", fontsize=10)
    _legend(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _cluster_line(ax: Any, c: dict[str, Any], part: str, key: str, label: str, color: str) -> None:
    """A figure against the number of nodes, and the in-memory relay's as a dashed line."""
    stats = [(n, _stat(c, str(n), part, key)) for n in c.get("nodes", [])]
    pts = [(n, st["median"]) for n, st in stats if st]
    if pts:
        ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=label)
        ax.set_xticks([n for n, _ in pts])
        ax.set_xlabel("relay nodes")
    ref = _stat(c, "in_memory", part, key)
    if ref:
        ax.axhline(ref["median"], color=color, linestyle="--", linewidth=1)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
