"""The weekly summary reads the week's approved time once (include/sql/summary/week_time.sql) for both its time
lines and its payroll rows: they must be exactly what the two separate queries give (time_lines.sql, which the
close report still uses, and payroll.sql), row for row and in the same order, over a week synced from the Harvest
sandbox (approved and unapproved time, billable and not, two currencies, a person without a cost rate)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import summary_support

agency = summary_support.agency

pytestmark = pytest.mark.integration


def test_one_pass_gives_the_lines_and_payroll_of_the_two_queries(agency):
    from closeout.payouts import config
    from closeout.summary import figures as fig
    from closeout.warehouse.db import connect

    week_start = agency.week_start
    week_end = week_start + timedelta(days=6)
    earlier = week_start - timedelta(days=7)  # a restated earlier week in the same read, as build_summary does
    with connect() as conn:
        config.mirror(conn, config.load())  # cost rates in the warehouse, so cost columns are exercised
        conn.commit()
        by_week, payroll = fig.read_week(conn, earlier, week_end, week_start, week_end)
        separate = fig.read_figures(conn, "week", earlier, week_end)
        separate_payroll = fig.rows(conn, "payroll", {"week_start": week_start, "week_end": week_end})
    assert by_week == separate
    assert by_week[week_start].lines, "the synced week has approved time"
    assert any(line.cost_minor is None for line in by_week[week_start].lines)  # Ben: no cost rate
    assert any(line.cost_minor is not None for line in by_week[week_start].lines)
    assert [dict(p) for p in payroll] == separate_payroll and len(payroll) == 4
    assert [list(p) for p in payroll] == [list(p) for p in separate_payroll]  # same columns, same order
