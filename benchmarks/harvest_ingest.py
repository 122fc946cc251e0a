"""Benchmark: Harvest sandbox -> warehouse, 1,000,000 entries (limits off), and an incremental sync.

Measured in one run, on one machine, against baselines taken in the same run:
  * download: fetch every page and discard it (the floor any client pays for HTTP + the sandbox);
  * parse + COPY: fetch, json-decode, COPY each entry's fields into a bare table (no versioning,
    validation or quarantine) - the reference DESIGN.md quotes (~14 s on these machines);
  * closeout: the real sync (closeout.trackers.harvest.sync.run_all) in a child process, whose
    peak RSS is read from the kernel after it exits.
Then 1,000 entries are edited in the sandbox and an incremental sync is run; its entry requests
are compared with the budget ceil(1000 / page size) + a constant.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGE_SIZE = 2000
TARGET_SECONDS = 60.0
TARGET_RSS_MB = 500.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("AIRFLOW_HOME", str(ROOT / ".closeout" / "bench-airflow"))
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def start_sandbox(entries: int, seed: int) -> tuple[subprocess.Popen, str]:
    args = ["--entries", str(entries), "--seed", str(seed), "--port", "0", "--no-rate-limit"]
    return start_sandbox_process("sandbox.harvest", args, "HARVEST_SANDBOX_URL")


def start_sandbox_process(module: str, args: list[str], marker: str) -> tuple[subprocess.Popen, str]:
    """A sandbox in its own process (so it does not share the benchmark's interpreter lock); returns the
    process and the base URL it printed as ``<marker>=<url>``."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(f"{marker}="):
        proc.kill()
        raise RuntimeError(f"{module} did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def harvest_conn(url: str) -> str:
    return json.dumps(
        {
            "conn_type": "http",
            "host": url,
            "password": "sandbox-token",
            "extra": {"account_id": "123456", "max_requests": 0, "per_page": PAGE_SIZE},
        }
    )


def control(url: str, method: str, path: str, body: dict | None = None) -> dict:
    import requests

    response = requests.request(method, f"{url}/_sandbox/{path}", json=body, timeout=120)
    response.raise_for_status()
    return response.json() if response.content else {}


def fresh_database(name: str) -> str:
    """A new empty database on the warehouse server; returns the connection JSON for it."""
    import psycopg
    from closeout.warehouse.embedded import ENV_VAR, ensure_warehouse

    ensure_warehouse()
    base = json.loads(os.environ[ENV_VAR])
    with psycopg.connect(
        host=base["host"],
        port=base.get("port") or 5432,
        user=base.get("login"),
        password=base.get("password") or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return json.dumps({**base, "schema": name})


def baseline_download(url: str) -> dict:
    import requests

    session = requests.Session()
    headers = {"Authorization": "Bearer sandbox-token", "Harvest-Account-Id": "123456", "User-Agent": "bench"}
    started = time.perf_counter()
    next_url: str | None = f"{url}/v2/time_entries?per_page={PAGE_SIZE}"
    pages = 0
    size = 0
    while next_url:
        response = session.get(next_url, headers=headers, timeout=120)
        size += len(response.content)
        # links.next without decoding the whole page: it sits in the trailing metadata
        tail = response.content[-2000:].decode()
        marker = '"next":'
        value = tail[tail.rindex(marker) + len(marker) :].lstrip()
        next_url = None if value.startswith("null") else value[1 : value.index('"', 1)]
        pages += 1
    return {"seconds": time.perf_counter() - started, "pages": pages, "megabytes": size / 1e6}


def parse_copy(url: str, conn_json: str, resource: str, columns: str, row) -> dict:
    """The floor a closeout sync is compared with: fetch every page of ``/v2/<resource>``, json.loads it and COPY
    ``row(item)`` of each item into a plain table (no versioning, validation, quarantine or references)."""
    import psycopg
    import requests

    conn = json.loads(conn_json)
    session = requests.Session()
    headers = {"Authorization": "Bearer sandbox-token", "Harvest-Account-Id": "123456", "User-Agent": "bench"}
    table = f"baseline_{resource}"
    with psycopg.connect(
        host=conn["host"], port=conn.get("port") or 5432, user=conn.get("login"), dbname=conn["schema"], autocommit=True
    ) as db:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"CREATE TABLE {table} ({columns})")
        started = time.perf_counter()
        next_url: str | None = f"{url}/v2/{resource}?per_page={PAGE_SIZE}"
        rows = 0
        while next_url:
            body = session.get(next_url, headers=headers, timeout=120).json()
            with db.transaction(), db.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for item in body[resource]:
                    copy.write_row(row(item))
            rows += len(body[resource])
            next_url = body["links"]["next"]
        return {"seconds": time.perf_counter() - started, "rows": rows}


def baseline_parse_copy(url: str, conn_json: str) -> dict:
    """Fetch, json.loads, COPY a dozen fields per entry into a plain table."""
    columns = ("id bigint, spent_date date, hours numeric, rounded_hours numeric, billable boolean, rate numeric, "
               "currency text, client_id bigint, project_id bigint, task_id bigint, user_id bigint, notes text, "
               "updated_at timestamptz")  # fmt: skip

    def row(e: dict) -> tuple:
        return (e["id"], e["spent_date"], e["hours"], e["rounded_hours"], e["billable"], e["billable_rate"],
                e["client"]["currency"], e["client"]["id"], e["project"]["id"], e["task"]["id"], e["user"]["id"],
                e["notes"], e["updated_at"])  # fmt: skip

    return parse_copy(url, conn_json, "time_entries", columns, row)


def run_child_sync(conn_json: str, url: str, sweep: str) -> dict:
    """The real sync in a child process, so its peak RSS is its own."""
    env = _env()
    env["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = conn_json
    env["AIRFLOW_CONN_HARVEST_DEFAULT"] = harvest_conn(url)
    code = (
        "import json, time\n"
        "from closeout.trackers.harvest import sync\n"
        "from closeout.trackers.settings import SyncSettings\n"
        "t = time.perf_counter()\n"
        f"summary = sync.run_all('benchmark', SyncSettings(sweep={sweep!r}))\n"
        "summary['seconds'] = time.perf_counter() - t\n"
        "import resource\n"
        "summary['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process only\n"
        "print('RESULT ' + json.dumps(summary))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sync failed:\n{proc.stderr[-4000:]}")
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])


def machine() -> dict:
    import psutil

    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    args = parser.parse_args(argv)

    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    print(f"generating {args.entries:,} entries in the Harvest sandbox ...", flush=True)
    sandbox, url = start_sandbox(args.entries, args.seed)
    try:
        download = baseline_download(url)
        print(f"  baseline download: {download['seconds']:.1f} s", flush=True)
        parse_copy = baseline_parse_copy(url, fresh_database("closeout_bench_baseline"))
        print(f"  baseline parse + COPY: {parse_copy['seconds']:.1f} s", flush=True)
        conn_json = fresh_database("closeout_bench")
        full = run_child_sync(conn_json, url, "never")
        print(f"  closeout full sync: {full['seconds']:.1f} s", flush=True)
        edited = control(url, "POST", "edit_random", {"count": args.edits, "seed": 1})
        control(url, "POST", "reset_stats")
        incremental = run_child_sync(conn_json, url, "never")
        stats = control(url, "GET", "stats")
    finally:
        sandbox.terminate()
        sandbox.wait(30)

    entry_requests = stats["by_path"].get("/v2/time_entries", 0)
    budget_pages = math.ceil(args.edits / PAGE_SIZE)
    constant = incremental["requests"] - entry_requests  # the four reference listings
    report = {
        "benchmark": "harvest_ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "entries": args.entries,
        "page_size": PAGE_SIZE,
        "full_sync": {
            "seconds": round(full["seconds"], 2),
            "entries_per_second": round(args.entries / full["seconds"]),
            "requests": full["requests"],
            "records": full["records"],
            "versions_created": full["versions_created"],
            "peak_rss_mb": round(full["peak_rss_mb"], 1),
        },
        "baselines": {
            "download_seconds": round(download["seconds"], 2),
            "parse_copy_seconds": round(parse_copy["seconds"], 2),
            "download_megabytes": round(download["megabytes"], 1),
        },
        "ratios": {
            "closeout_vs_parse_copy": round(full["seconds"] / parse_copy["seconds"], 2),
            "closeout_vs_download": round(full["seconds"] / download["seconds"], 2),
        },
        "incremental": {
            "edits": len(edited.get("ids", [])),
            "entry_requests": entry_requests,
            "other_requests": constant,
            "budget_entry_requests": budget_pages,
            "within_budget": entry_requests <= budget_pages + 1,
            "versions_created": incremental["versions_created"],
            "seconds": round(incremental["seconds"], 2),
        },
        "targets": {
            "seconds": TARGET_SECONDS,
            "peak_rss_mb": TARGET_RSS_MB,
            "met": full["seconds"] < TARGET_SECONDS and full["peak_rss_mb"] < TARGET_RSS_MB,
        },
    }
    print_table(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        path = RESULTS / f"harvest_ingest-{stamp}-{platform.node()}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {path.relative_to(ROOT)}")
    return report


def print_table(r: dict) -> None:
    f, b, i = r["full_sync"], r["baselines"], r["incremental"]
    rows = [
        ("entries", f"{r['entries']:,}", ""),
        ("download only (baseline)", f"{b['download_seconds']:.1f} s", f"{b['download_megabytes']:.0f} MB"),
        ("parse + COPY (baseline)", f"{b['parse_copy_seconds']:.1f} s", ""),
        ("closeout full sync", f"{f['seconds']:.1f} s", f"{f['entries_per_second']:,} entries/s"),
        ("  ratio to parse + COPY", f"{r['ratios']['closeout_vs_parse_copy']:.2f}x", ""),
        ("  requests", f"{f['requests']}", f"page size {r['page_size']}"),
        ("  peak RSS", f"{f['peak_rss_mb']:.0f} MB", f"target < {r['targets']['peak_rss_mb']:.0f} MB"),
        ("incremental after edits", f"{i['edits']} edits", f"{i['seconds']:.2f} s"),
        (
            "  entry requests",
            f"{i['entry_requests']}",
            f"budget ceil({i['edits']}/{r['page_size']}) = {i['budget_entry_requests']} (+1 overlap)",
        ),
        ("  other requests (constant)", f"{i['other_requests']}", "clients, projects, tasks, users"),
        ("targets met", str(r["targets"]["met"]), f"< {r['targets']['seconds']:.0f} s and < 500 MB"),
    ]
    width = max(len(a) for a, _, _ in rows)
    print()
    for a, b_, c in rows:
        print(f"{a:<{width}}  {b_:>14}  {c}")


if __name__ == "__main__":
    main()
