"""Local, stateful stand-ins for the third-party APIs the pipeline talks to (tests, demo, benchmarks)."""
