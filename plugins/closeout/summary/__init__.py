"""Weekly time and cost summary for finance (issue 16 item 5; DAG ``closeout_weekly_summary``, docs/weekly-summary.md).

- ``weeks``: ISO weeks (``YYYY-Www``), ``parse_week``, ``last_week``.
- ``figures``: set-based reads of time, cost and expenses per client, project and person; margins per currency
  (also used by the close report's margin view, per month).
- ``build``: one week's summary in one snapshot, with unapproved time, payroll hours and changes since last
  summarised.
- ``files`` / ``page`` / ``chart``: ``summaries/YYYY-Www/`` in the artifact store: summary.html, summary.csv,
  payroll.csv, summary.json.
- ``record`` / ``mail`` / ``tasks``: the week's row (migration 0037) and the e-mail to finance, once per week.
"""
