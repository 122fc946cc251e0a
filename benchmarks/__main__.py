"""Run every benchmark: python -m benchmarks [--entries N]. Each prints its table and writes its results file.
The distribution benchmark (a real scheduler and two Celery workers, about 5 minutes) runs last, when Debian's
redis-server is installed (it is the Celery broker), with its own default size."""

import shutil
import sys

from benchmarks import (
    accounting_push,
    distribution,
    drafting,
    expenses,
    harvest_ingest,
    reconcile,
    stripe_cash,
    stripe_payments,
    weekly_summary,
    windowed_ingest,
    writeback,
)

if __name__ == "__main__":
    args = sys.argv[1:]
    harvest_ingest.main(args)
    windowed_ingest.main([a for a in args if a != "--edits"])
    expenses.main([a for a in args if a != "--entries"])
    drafting.main([a for a in args if a != "--edits"])
    stripe_payments.main([a for a in args if a not in ("--edits", "--entries")])
    stripe_cash.main([a for a in args if a not in ("--edits", "--entries")])
    reconcile.main([a for a in args if a != "--edits"])
    weekly_summary.main([a for a in args if a != "--edits"])
    accounting_push.main([a for a in args if a not in ("--edits", "--entries")])
    writeback.main([a for a in args if a not in ("--edits", "--entries")])
    if shutil.which("redis-server"):
        distribution.main([])
    else:
        print("distribution: skipped, redis-server is not installed (apt-get install redis-server)")
