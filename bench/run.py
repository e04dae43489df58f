# ruff: noqa: B023 - every lambda below is awaited at once, inside its own loop iteration
"""`python -m bench.run [--quick | --tiny] [--out DIR]`: termshare vs TermPair vs the machine's limit.

Runs every workload of issue 6 on termshare, on the reference (TermPair 0.3.1.5, set up on first
run in bench/.venv-termpair with Python 3.10) and on the limit where one exists, prints one table,
and writes results.json and results.png into --out (default bench/results/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import resource
import signal
import statistics
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from termshare import malloc

from . import browser as webpage
from . import cluster, floor, keystroke, payload, procs, reference, report, workloads
from .systems import Relay, TermPair, Termshare

MB = 1_000_000
# Sizes per mode. *_ref_* are TermPair's (10-40x slower: same rates, fewer bytes, less waiting).
MODES: dict[str, dict[str, Any]] = {
    "full": dict(repeats=5, tp_bytes=200 * MB, tp_ref_bytes=16 * MB, echo_n=1000, echo_rounds=4, echo_interval=0.02, keystroke_n=50,
                 fan=[1, 10, 100, 200], fan_bytes={1: 50 * MB, 10: 20 * MB, 100: 4 * MB, 200: 2 * MB},
                 fan_ref_total=24 * MB, stall_others=5, stall_bytes=100 * MB, stall_ref_bytes=16 * MB,
                 stall_timeout=20.0, idle_sessions=1000, idle_viewers=2, idle_seconds=30.0, startup_repeats=5, flood_warmup=1.0,
                 browser_bytes=50 * MB, browser_ref_bytes=4 * MB, browser_repeats=1, browser_echo_n=100, browser_dom_limit=True,
                 cluster_nodes=[1, 2, 3], cluster_viewers=30, cluster_bytes=10 * MB, cluster_echo_n=200,
                 cluster_sessions=500, cluster_idle_seconds=5.0),
    "quick": dict(repeats=3, tp_bytes=50 * MB, tp_ref_bytes=4 * MB, echo_n=250, echo_rounds=2, echo_interval=0.02, keystroke_n=30,
                  fan=[1, 10, 100, 200], fan_bytes={1: 20 * MB, 10: 5 * MB, 100: 1 * MB, 200: 1 * MB},
                  fan_ref_total=8 * MB, stall_others=5, stall_bytes=40 * MB, stall_ref_bytes=12 * MB,
                  stall_timeout=10.0, idle_sessions=500, idle_viewers=2, idle_seconds=20.0, startup_repeats=3, flood_warmup=1.0,
                  browser_bytes=20 * MB, browser_ref_bytes=2 * MB, browser_repeats=1, browser_echo_n=50, browser_dom_limit=True,
                  cluster_nodes=[1, 2, 3], cluster_viewers=30, cluster_bytes=4 * MB, cluster_echo_n=100,
                  cluster_sessions=200, cluster_idle_seconds=3.0),
    "tiny": dict(repeats=1, tp_bytes=4 * MB, tp_ref_bytes=1 * MB, echo_n=20, echo_rounds=2, echo_interval=0.02, keystroke_n=5,
                 fan=[1, 5], fan_bytes={1: 2 * MB, 5: 1 * MB}, fan_ref_total=1 * MB, stall_others=2,
                 stall_bytes=4 * MB, stall_ref_bytes=1 * MB, stall_timeout=3.0, idle_sessions=10,
                 idle_viewers=2, idle_seconds=1.0, startup_repeats=1, flood_warmup=0.3,
                 browser_bytes=1 * MB, browser_ref_bytes=MB // 4, browser_repeats=1, browser_echo_n=5, browser_dom_limit=False,
                 cluster_nodes=[1, 2], cluster_viewers=4, cluster_bytes=MB // 2, cluster_echo_n=10,
                 cluster_sessions=10, cluster_idle_seconds=0.5),
}
WORKLOADS = ("throughput", "echo", "fanout", "stalled", "idle", "startup", "footprint", "browser", "cluster")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """{metric: {median, min, max}} over the runs' numeric fields, plus the runs themselves."""
    out: dict[str, Any] = {"runs": runs}
    for key in runs[0] if runs else []:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)]
        if len(values) == len(runs):
            out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        elif all(isinstance(r.get(key), bool) for r in runs):
            out[key] = all(r[key] for r in runs)
    return out


def summary(results: list[Any], failed: str | None = None) -> dict[str, Any]:
    """summarize() of the runs that worked. When none did: {"error": failed}, or with no `failed`
    given, the failure of the one run."""
    runs = [r for r in results if r and "error" not in r]
    if runs:
        return summarize(runs)
    if failed is None and len(results) == 1 and results[0] is not None:
        only: dict[str, Any] = results[0]
        return only
    return {"error": failed or "every run failed"}


def merge_echo(rounds: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One echo result from the rounds that worked: percentiles over all their keystrokes."""
    ok = [r for r in rounds if r and "error" not in r]
    if not ok:
        return rounds[0] if rounds else None
    samples = sorted(x for r in ok for x in r["samples_ms"])
    merged = {"p50_ms": workloads._pct(samples, 50), "p99_ms": workloads._pct(samples, 99), "max_ms": samples[-1],
              "keystrokes": len(samples), "lost": sum(r["lost"] for r in ok), "rounds_failed": len(rounds) - len(ok),
              "round_p50s_ms": [r["p50_ms"] for r in ok], "samples_ms": samples}
    if "flood_alive" in ok[0]:
        merged["flood_alive"] = all(r["flood_alive"] for r in ok)
    return merged


def shortfall(result: dict[str, Any]) -> str | None:
    """What a run lost (bytes, keystrokes, viewers, load), which makes its figures not a result."""
    if result.get("complete") is False:
        return f"only {result['bytes']} of {result['payload_bytes']} bytes arrived"
    if lost := result.get("lost") or result.get("echo_lost"):
        return f"{lost} keystroke(s) never echoed"
    if result.get("flood_alive") is False:
        return "the flooding session stopped before the keystrokes were done"
    if "sessions_wanted" in result and result["sessions"] < result["sessions_wanted"]:
        return f"only {result['sessions']} of {result['sessions_wanted']} idle sessions opened in time"
    if result.get("incomplete_unexplained"):
        return f"{result['incomplete_unexplained']} viewer(s) short of bytes without a resync"
    if "viewers_opened" in result and result["viewers"] < result["viewers_opened"]:
        return f"{result['viewers_opened'] - result['viewers']} idle viewer(s) dropped"
    return None


def _unavailable(workload: str, reason: str) -> dict[str, Any]:
    print(f"  {workload} unavailable: {reason}", file=sys.stderr)
    return {"unavailable": reason}


class Bench:
    def __init__(self, cfg: dict[str, Any], out: Path, ref: reference.Reference) -> None:
        self.cfg = cfg
        self.out = out
        self.systems: list[Any] = [Termshare()] + ([TermPair(ref)] if ref.available else [])
        self.failures: list[str] = []
        self.file = out / "payload.bin"

    @contextlib.asynccontextmanager
    async def relay(self, system: Any) -> AsyncIterator[Relay]:
        relay = system.start_relay()
        try:
            yield relay
        finally:
            procs.stop(relay.proc)

    async def each(self, label: str, system: Any, fn: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any] | None:
        t0 = time.monotonic()
        who = f"{label} [{system if isinstance(system, str) else system.name}]"
        try:
            result = await fn()
        except Exception as exc:  # noqa: BLE001 - one failure is reported, the run goes on
            if procs.stopping:  # what the signal broke (a closed browser, a dead pipe) is not a result
                raise asyncio.CancelledError from None
            message = f"{who}: {type(exc).__name__}: {exc}"
            self.failures.append(message)
            print(f"  FAILED {message}", file=sys.stderr)
            traceback.print_exc(limit=3, file=sys.stderr)
            return {"error": message}
        if result and (lost := shortfall(result)):
            # kept (the figures say how far it got) but counted: a run that loses data failed
            message = f"{who}: {lost}"
            self.failures.append(message)
            print(f"  FAILED {message}", file=sys.stderr)
        print(f"  {who} {time.monotonic() - t0:.1f} s", file=sys.stderr)
        return result

    # -- workloads ------------------------------------------------------------------------------
    async def throughput(self) -> dict[str, Any]:
        c = self.cfg
        sizes = {s.name: c["tp_bytes"] if s.name == "termshare" else c["tp_ref_bytes"] for s in self.systems}
        runs: dict[str, list[dict[str, Any] | None]] = {name: [] for name in ("limit", *sizes)}
        # Round-robin, not one system's repeats after another's: this machine's speed drifts by a
        # fifth within minutes, and each ratio must compare runs made under the same conditions.
        for _ in range(c["repeats"]):
            runs["limit"].append(await self.each(
                "throughput", "limit", lambda: asyncio.to_thread(workloads.pty_drain, self.file, c["tp_bytes"], 60)))
            for system in self.systems:
                async with self.relay(system) as relay:
                    runs[system.name].append(await self.each(
                        "throughput", system, lambda: workloads.throughput(system, relay, self.file, sizes[system.name], 120)))
        res: dict[str, Any] = {"limit": summary(runs["limit"], "pty drain failed")}
        for name, size in sizes.items():
            res[name] = summary(runs[name], "every run failed")
            res[name]["bytes_per_run"] = size
        return res

    async def echo(self) -> dict[str, Any]:
        c = self.cfg
        rounds = c["echo_rounds"]
        n = c["echo_n"] // rounds
        res: dict[str, Any] = {"interval_ms": c["echo_interval"] * 1000, "rounds": rounds}
        keys: list[dict[str, Any] | None] = []
        bound = n * (c["echo_interval"] + 0.01) + 30
        for cond in ("idle", "flood"):
            flood = self.file if cond == "flood" else None
            parts: dict[str, list[dict[str, Any] | None]] = {}
            # The keystrokes of each system are spread over rounds taken in turn, so that drift in
            # the machine's speed falls on each alike; the percentiles are over all of them.
            for _ in range(rounds):
                parts.setdefault("limit", []).append(await self.each(f"echo {cond}", "limit", lambda: asyncio.to_thread(
                    workloads.pty_echo, n, c["echo_interval"], flood, bound, c["flood_warmup"])))
                if cond == "idle":
                    parts.setdefault("floor", []).append(await self.each(
                        "echo floor", "3 asyncio processes", lambda: floor.echo_floor(n, c["echo_interval"])))
                    keys.append(await self.each("keystroke CPU", "no I/O", lambda: asyncio.to_thread(
                        keystroke.keystroke_cpu, c["keystroke_n"], c["echo_interval"])))
                for system in self.systems:
                    async with self.relay(system) as relay:
                        parts.setdefault(system.name, []).append(await self.each(f"echo {cond}", system, lambda: workloads.echo_latency(
                            system, relay, n, c["echo_interval"], flood, bound, c["flood_warmup"])))
            res[cond] = {name: summary([merge_echo(runs)]) for name, runs in parts.items()}
        res["keystroke_cpu"] = summary(keys)
        return res

    async def fanout(self) -> dict[str, Any]:
        c = self.cfg
        res: dict[str, Any] = {}
        for n in c["fan"]:
            res[str(n)] = {}
            for system in self.systems:
                size = c["fan_bytes"][n]
                if system.name != "termshare":
                    size = max(64 * 1024, min(size, c["fan_ref_total"] // n))
                async with self.relay(system) as relay:
                    r = await self.each(f"fan-out {n}", system, lambda: workloads.fanout(system, relay, self.file, n, size, 120))
                res[str(n)][system.name] = summary([r])
        return res

    async def stalled(self) -> dict[str, Any]:
        c = self.cfg
        res: dict[str, Any] = {"others": c["stall_others"]}
        for system in self.systems:
            size = c["stall_bytes"] if system.name == "termshare" else c["stall_ref_bytes"]
            res[system.name] = {}
            for mode, key, label in (("none", "baseline", "stalled viewer (baseline)"), ("stalled", "stalled", "stalled viewer"),
                                     ("slow", "slow", "slow viewer")):
                async with self.relay(system) as relay:
                    r = await self.each(label, system, lambda: workloads.stalled(
                        system, relay, self.file, c["stall_others"], size, c["stall_timeout"], mode))
                res[system.name][key] = summary([r])
        return res

    async def idle(self) -> dict[str, Any]:
        c = self.cfg
        res: dict[str, Any] = {"sessions": c["idle_sessions"], "viewers_per_session": c["idle_viewers"]}
        for system in self.systems:
            async with self.relay(system) as relay:
                r = await self.each("idle sessions", system, lambda: workloads.idle_cost(
                    system, relay, c["idle_sessions"], c["idle_viewers"], c["idle_seconds"], 120))
            res[system.name] = summary([r])
        return res

    async def startup(self) -> dict[str, Any]:
        c = self.cfg
        res: dict[str, Any] = {}
        # As installed from a wheel (pip compiles bytecode at install; TermPair's venv has it too):
        # an editable checkout under PYTHONDONTWRITEBYTECODE would otherwise recompile every start.
        import compileall

        compileall.compile_dir(str(Path(__file__).parents[1] / "termshare"), quiet=1)
        res["limit"] = summarize([workloads.python_floor() for _ in range(c["startup_repeats"])])
        for system in self.systems:
            runs = []
            async with self.relay(system) as relay:
                for _ in range(c["startup_repeats"]):
                    r = await self.each("start-up", system, lambda: asyncio.to_thread(workloads.startup, system, relay))
                    runs.append(r)
            res[system.name] = summary(runs, "every run failed")
        return res

    def footprint(self, results: dict[str, Any]) -> dict[str, Any]:
        """7: gathered from the throughput runs (wire bytes, RSS under load) and start-up (RSS at rest)."""
        res: dict[str, Any] = {"limit": {"wire_per_byte": {"median": 1.0, "min": 1.0, "max": 1.0}}}
        floor = results.get("startup", {}).get("limit", {})
        for key in ("share_rss_mb", "libraries_rss_mb"):
            if key in floor:
                res["limit"][key] = floor[key]
        for system in self.systems:
            tp = results.get("throughput", {}).get(system.name, {})
            su = results.get("startup", {}).get(system.name, {})
            entry = {k: tp[k] for k in ("wire_per_byte", "share_rss_peak_mb") if k in tp}
            if "share_rss_mb" in su:
                entry["share_rss_mb"] = su["share_rss_mb"]
            res[system.name] = entry or {"error": "no throughput or start-up data"}
        return res

    async def browser(self) -> dict[str, Any]:
        """8: the web app in headless Chromium (bench/browser.py)."""
        c = self.cfg
        reason = webpage.unavailable()
        if reason is not None:
            return _unavailable("browser", reason)
        sizes = {s.name: c["browser_bytes"] if s.name == "termshare" else c["browser_ref_bytes"] for s in self.systems}
        res: dict[str, Any] = {"bytes": sizes | {"limit": c["browser_bytes"]}, "echo_keystrokes": c["browser_echo_n"],
                               "limit_is": "xterm.js alone (webapp/node_modules, the version the web app bundles) "
                                           "writing the same bytes in the same Chromium, same renderer"}
        stack = contextlib.AsyncExitStack()
        try:
            chromium = await stack.enter_async_context(webpage.chromium())
        except Exception as exc:  # noqa: BLE001 - a Chromium that does not start is "unavailable", as in tests/browser
            await stack.aclose()
            return _unavailable("browser", f"Chromium does not start under Playwright: {type(exc).__name__}: {exc}")
        async with stack:
            for system in self.systems:
                size = sizes[system.name]
                runs = []
                for _ in range(c["browser_repeats"]):
                    async with self.relay(system) as relay:
                        r = await self.each("browser", system, lambda: webpage.web_app(
                            chromium, system, relay, self.file, size, 60 + size / MB * 5, c["browser_echo_n"],
                            c["echo_interval"]))
                    runs.append(r)
                res[system.name] = summary(runs, "every run failed")
                if "runs" in res[system.name]:
                    res[system.name]["renderer"] = res[system.name]["runs"][0]["renderer"]
            reason = webpage.limit_unavailable()
            if reason is not None:
                res["limit"] = {"unavailable": reason}
                return res
            webgl = res.get("termshare", {}).get("renderer") == "webgl"
            width = res.get("termshare", {}).get("screen_width_px", {}).get("median", 0)  # the same screen size
            runs = []
            for _ in range(c["browser_repeats"]):
                r = await self.each("browser", "limit", lambda: webpage.xterm_alone(
                    chromium, self.file, c["browser_bytes"], 60 + c["browser_bytes"] / MB * 5, webgl,
                    c["browser_echo_n"], c["echo_interval"], width))
                runs.append(r)
            res["limit"] = summary(runs, "every run failed")
            if webgl and c["browser_dom_limit"]:  # what the renderer costs here (WebGL in headless Chromium is software)
                r = await self.each("browser (DOM renderer)", "limit", lambda: webpage.xterm_alone(
                    chromium, self.file, c["browser_bytes"], 60 + c["browser_bytes"] / MB * 5, False, 0, 0, width))
                res["limit_dom_renderer"] = summary([r])
        return res

    async def cluster(self) -> dict[str, Any]:
        """Issue 7: 1, 2, 3 relay nodes on Redis against one in-memory relay (bench/cluster.py)."""
        c = self.cfg
        reason = cluster.unavailable()
        if reason is not None:
            return _unavailable("cluster", reason)
        res: dict[str, Any] = {"nodes": c["cluster_nodes"], "viewers": c["cluster_viewers"],
                               "per_viewer_bytes": c["cluster_bytes"], "sessions": c["cluster_sessions"],
                               "reference": "in_memory"}
        try:
            with cluster.redis_server() as (url, redis_pid):
                for n in [0, *c["cluster_nodes"]]:
                    key, label = ("in_memory", "cluster in-memory") if n == 0 else (str(n), f"cluster {n} node(s)")
                    pid = redis_pid if n else None
                    entry: dict[str, Any] = {}
                    try:
                        with cluster.relays(url if n else None, max(n, 1)) as nodes:
                            parts = {
                                "fanout": lambda: cluster.fanout(nodes, pid, self.file, c["cluster_viewers"],
                                                                 c["cluster_bytes"], 60),
                                "echo": lambda: cluster.echo(nodes, c["cluster_echo_n"], c["echo_interval"]),
                                "sessions": lambda: cluster.sessions(nodes, pid, c["cluster_sessions"],
                                                                     c["cluster_idle_seconds"], 60),
                            }
                            for part, fn in parts.items():
                                r = await self.each(f"{label} {part}", "termshare", fn)
                                entry[part] = summary([r])
                    except procs.BenchError as exc:
                        self._fail(f"{label} [termshare]: {exc}")
                        entry = {"error": str(exc)}
                    res[key] = entry
        except procs.BenchError as exc:
            self._fail(f"cluster [termshare]: {exc}")
            res["error"] = str(exc)
        return res

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"  FAILED {message}", file=sys.stderr)


async def run_all(bench: Bench, only: set[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in ("throughput", "echo", "fanout", "stalled", "idle", "startup"):
        if only and name not in only:
            continue
        if procs.stopping:
            raise asyncio.CancelledError
        print(f"[{name}]", file=sys.stderr, flush=True)
        results[name] = await getattr(bench, name)()
    if not only or "footprint" in only:
        results["footprint"] = bench.footprint(results)
    for name in ("browser", "cluster"):
        if procs.stopping:
            raise asyncio.CancelledError
        if not only or name in only:
            print(f"[{name}]", file=sys.stderr, flush=True)
            results[name] = await getattr(bench, name)()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, about 4 minutes")
    size.add_argument("--tiny", action="store_true", help="smallest sizes, under a minute (the test suite's check)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="where results go")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(WORKLOADS)} (footprint brings throughput and startup)")
    parser.add_argument("--no-reference", action="store_true", help="skip TermPair (ratios shown as n/a)")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    malloc.tune()  # the viewers here run `termshare join`'s code, and join's process does this
    cfg = MODES[mode]
    only = {w.strip() for w in (args.only or "").split(",") if w.strip()}
    if args.only is not None and not only:
        parser.error(f"--only: no workload given (there are {', '.join(WORKLOADS)})")
    if unknown := sorted(only - set(WORKLOADS)):
        parser.error(f"--only: no workload named {', '.join(unknown)} (there are {', '.join(WORKLOADS)})")
    if "footprint" in only:
        only |= {"throughput", "startup"}  # its figures come from those runs
    if not args.out:  # Path("") would be the current directory
        parser.error("--out: an empty path")
    args.out = Path(os.path.abspath(args.out))  # the shared commands run elsewhere (procs.REPO) and read files in it
    if reason := _unwritable(args.out):
        parser.error(f"--out {args.out}: {reason}")

    procs.install_cleanup()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 16384), hard), hard))

    t0 = time.monotonic()
    sizes = [cfg["tp_bytes"], cfg["stall_bytes"], *cfg["fan_bytes"].values(), cfg["browser_bytes"], cfg["cluster_bytes"]]
    try:
        payload.make(args.out / "payload.bin", max(sizes))
        if args.no_reference:
            ref = reference.Reference(False, "skipped (--no-reference)")
        else:
            ref = reference.setup(lambda m: print(m, file=sys.stderr, flush=True))
        if not ref.available:
            print(f"reference unavailable: {ref.reason}", file=sys.stderr, flush=True)
        bench = Bench(cfg, args.out, ref)
        workloads_ = asyncio.run(run_all(bench, only))
    except KeyboardInterrupt:
        print("python -m bench.run: interrupted; no results written", file=sys.stderr)
        return 130
    except (SystemExit, asyncio.CancelledError):  # CancelledError: a library caught the SystemExit
        if not procs.stopping:
            raise
        print(f"python -m bench.run: stopped by {signal.Signals(procs.stopping).name}; no results written", file=sys.stderr)
        return 128 + procs.stopping
    finally:
        procs.stop_all()
        with contextlib.suppress(OSError):
            (args.out / "payload.bin").unlink()
    results: dict[str, Any] = {
        "meta": {
            "mode": mode, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(), "machine": platform.machine(), "cpus": procs.cpus(),
            "reference": {"name": f"TermPair {reference.VERSION}", "available": ref.available, "reason": ref.reason},
            "config": {k: v for k, v in cfg.items() if k != "fan_bytes"} | {"fan_bytes": {str(k): v for k, v in cfg["fan_bytes"].items()}},
            "seconds": round(time.monotonic() - t0, 1), "failures": bench.failures, "mb": "10^6 bytes",
            "only": sorted(only) or "all", "no_reference": args.no_reference,
        },
        "workloads": workloads_,
    }
    rows = report.rows(results)
    results["table"] = rows
    print(report.table(rows, ref))
    report.write_json(results, args.out / "results.json")
    chart = report.chart(results, args.out / "results.png")
    print(f"\nwrote {args.out / 'results.json'}" + (f" and {chart}" if chart else " (no chart: matplotlib missing)"))
    print(f"total {results['meta']['seconds']} s; {len(bench.failures)} failure(s)")
    for failure in bench.failures:
        print(f"  {failure}")
    termshare_failed = any("[termshare]" in f or "[limit]" in f for f in bench.failures)
    return 1 if termshare_failed else 0


def _unwritable(out: Path) -> str | None:
    """Why results cannot go to `out`, found before the run rather than after it."""
    if out.exists() and not out.is_dir():
        return "not a directory"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".bench-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    for name in ("results.json", "results.png", "payload.bin"):
        if (out / name).exists() and not (out / name).is_file():
            return f"{name} there is not a file"
    return None



if __name__ == "__main__":
    sys.exit(main())
