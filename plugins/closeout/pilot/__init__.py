"""Pilot and shadow mode: a cohort of clients is billed for real, the rest drafted and compared (docs/pilot.md)."""
