"""The month-end close: the one moment the whole chain is brought to a stop for a period.

``closeout_month_end_close`` (manual, ``period`` YYYY-MM, ``dry_run``) runs the final sync, locks the period,
refreshes drafts, publishes, applies events, posts journals, exports to accounting and reconciles, then writes
the close report (``closeout.close.report``: an HTML page with inline SVG charts and its data as CSV and JSON,
to a local path or an object-storage URL) that finance reads and the run's notes and the finance alert link to.
Modules here are plain functions the thin DAG file calls; heavy imports stay inside them so the DAG parses fast.
"""
