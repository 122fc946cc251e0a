"""Capture: one sub-package per time tracker, sharing the versioned entry store and run bookkeeping."""
