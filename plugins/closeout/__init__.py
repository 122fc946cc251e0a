"""closeout: the time-to-cash pipeline (trackers -> invoices -> Stripe -> journals -> recon -> payouts).

Importable as ``closeout`` wherever ``plugins/`` is on ``sys.path`` (every Airflow deployment).
DAG files import from here inside task bodies only, so parsing stays fast.
"""

__version__ = "0.1.0"
