"""Run every benchmark: python -m benchmarks [--entries N]."""

from benchmarks.harvest_ingest import main

if __name__ == "__main__":
    main()
