"""Run every benchmark: python -m benchmarks [--entries N]. Each prints its table and writes its results file."""

import sys

from benchmarks import drafting, harvest_ingest, reconcile, stripe_cash, stripe_payments, windowed_ingest

if __name__ == "__main__":
    args = sys.argv[1:]
    harvest_ingest.main(args)
    windowed_ingest.main([a for a in args if a != "--edits"])
    drafting.main([a for a in args if a != "--edits"])
    stripe_payments.main([a for a in args if a not in ("--edits", "--entries")])
    stripe_cash.main([a for a in args if a not in ("--edits", "--entries")])
    reconcile.main([a for a in args if a != "--edits"])
