"""Benchmark: Toggl Track and Clockify sandboxes -> warehouse (limits off), and a re-list of the window.

For each tracker: a full first sync of N generated entries (the history window) in a child process
(which reports its own peak RSS), then a second sync that re-lists the trailing window, whose requests
are compared with the minimum the API allows: one report page per ``page size`` rows of the window,
plus the reference listings when they are due (none are: they were read minutes ago).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

from benchmarks.harvest_ingest import RESULTS, ROOT, _env, control, fresh_database, machine

PAGE_SIZE = 1000
TRACKERS = {
    "toggl": {"module": "sandbox.toggl", "url_var": "TOGGL_SANDBOX_URL", "args": ["--quota", "none",
              "--no-short-term-limit"], "sync": "closeout.trackers.toggl.sync"},
    "clockify": {"module": "sandbox.clockify", "url_var": "CLOCKIFY_SANDBOX_URL", "args": ["--limit", "none"],
                 "sync": "closeout.trackers.clockify.sync"},
}  # fmt: skip


def start(name: str, entries: int, seed: int) -> tuple[subprocess.Popen, str]:
    spec = TRACKERS[name]
    proc = subprocess.Popen([sys.executable, "-m", spec["module"], "--entries", str(entries), "--seed", str(seed),
                             "--port", "0", *spec["args"]], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(spec["url_var"] + "="):
        proc.kill()
        raise RuntimeError(f"{name} sandbox did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def connection(name: str, url: str) -> str:
    if name == "toggl":
        import requests

        me = requests.get(f"{url}/api/v9/me", auth=("1971800d4d82861d8f2c1651fea4d212", "api_token"), timeout=30).json()
        return json.dumps({"conn_type": "http", "host": url, "password": "1971800d4d82861d8f2c1651fea4d212",
                           "extra": {"workspace_id": me["default_workspace_id"], "requests_per_hour": 0,
                                     "short_term": [0, 1], "page_size": PAGE_SIZE}})  # fmt: skip
    import requests

    key = "sandbox-api-key"
    ws = requests.get(f"{url}/api/v1/workspaces", headers={"X-Api-Key": key}, timeout=30).json()[0]["id"]
    return json.dumps({"conn_type": "http", "host": f"{url}/api/v1", "password": key,
                       "extra": {"workspace_id": ws, "reports_url": f"{url}/reports/v1", "max_requests": 0,
                                 "page_size": PAGE_SIZE}})  # fmt: skip


def run_child(name: str, conn_json: str, tracker_conn: str, sweep: str) -> dict:
    env = _env()
    env["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = conn_json
    env[f"AIRFLOW_CONN_{name.upper()}_DEFAULT"] = tracker_conn
    code = (
        "import json, time\n"
        f"from {TRACKERS[name]['sync']} import run_all\n"
        "from closeout.trackers.settings import SyncSettings\n"
        "t = time.perf_counter()\n"
        f"summary = run_all('benchmark', SyncSettings(sweep={sweep!r}))\n"
        "summary['seconds'] = time.perf_counter() - t\n"
        "import resource\n"
        "summary['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process only\n"
        "print('RESULT ' + json.dumps(summary))\n"
    )
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{name} sync failed:\n{proc.stderr[-4000:]}")
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    return result


def bench(name: str, entries: int, seed: int) -> dict:
    print(f"{name}: generating {entries:,} entries ...", flush=True)
    sandbox, url = start(name, entries, seed)
    try:
        conn_json = fresh_database(f"closeout_bench_{name}")
        tracker_conn = connection(name, url)
        full = run_child(name, conn_json, tracker_conn, "never")
        print(f"  {name} full sync: {full['seconds']:.1f} s", flush=True)
        control(url, "POST", "reset_stats")
        relist = run_child(name, conn_json, tracker_conn, "always")
        stats = control(url, "GET", "stats")
    finally:
        sandbox.terminate()
        sandbox.wait(30)
    report_requests = sum(
        n for path, n in stats["by_path"].items() if "search/time_entries" in path or "/reports/" in path
    )
    other = stats["requests"] - report_requests
    # the minimum: the window's rows at the largest page size; a full last page needs one more empty one
    minimum = math.ceil(relist["records"] / PAGE_SIZE) if name == "clockify" else None
    return {
        "entries": entries,
        "full_sync": {"seconds": round(full["seconds"], 2),
                      "entries_per_second": round(full["records"] / full["seconds"]),
                      "records": full["records"], "requests": full["requests"],
                      "peak_rss_mb": round(full["peak_rss_mb"], 1)},
        "window_relist": {"seconds": round(relist["seconds"], 2), "entries_in_window": relist["records"],
                          "report_requests": report_requests, "other_requests": other,
                          "minimum_report_requests": minimum, "versions_created": relist["versions_created"]},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trackers", nargs="*", default=list(TRACKERS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    started = time.perf_counter()
    report = {"benchmark": "windowed_ingest", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "page_size": PAGE_SIZE,
              "trackers": {name: bench(name, args.entries, args.seed) for name in args.trackers}}  # fmt: skip
    print()
    print(f"{'tracker':<9} {'entries':>10} {'full sync':>10} {'entries/s':>10} {'peak RSS':>9} "
          f"{'re-list: entries':>17} {'report req':>10} {'minimum':>8} {'other req':>9}")  # fmt: skip
    for name, r in report["trackers"].items():
        f, w = r["full_sync"], r["window_relist"]
        minimum = "-" if w["minimum_report_requests"] is None else str(w["minimum_report_requests"])
        print(f"{name:<9} {f['records']:>10,} {f['seconds']:>9.1f}s {f['entries_per_second']:>10,} "
              f"{f['peak_rss_mb']:>7.0f}MB {w['entries_in_window']:>17,} {w['report_requests']:>10} {minimum:>8} "
              f"{w['other_requests']:>9}")  # fmt: skip
    print(f"(total {time.perf_counter() - started:.0f} s)")
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"windowed_ingest-{datetime.now(UTC):%Y-%m-%d}-{platform.node()}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {path.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
