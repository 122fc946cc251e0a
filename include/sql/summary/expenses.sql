-- Weekly summary: approved expenses per bucket (ISO week or month), client, project, person and currency (minor units of that
-- currency). Billable expenses are passed on to the client; non-billable ones are the business's own cost and
-- come off the margin. An expense on no client's project is shown under 'no client'. Parameters: bucket ('week' or 'month'), range_start, range_end.
SELECT date_trunc(%(bucket)s, x.spent_date)::date AS bucket_start, coalesce(x.client_key, 'no client') AS client_key,
       x.project_key, x.user_key, x.currency,
       cur.exponent,
       coalesce(sum(x.amount_minor) FILTER (WHERE x.billable), 0) AS billable_minor,
       coalesce(sum(x.amount_minor) FILTER (WHERE NOT x.billable), 0) AS nonbillable_minor,
       count(*) AS expenses
FROM closeout.expenses x
JOIN closeout_data.currencies cur ON cur.code = x.currency
WHERE x.deleted_at IS NULL AND x.approved AND x.spent_date BETWEEN %(range_start)s AND %(range_end)s
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 1, 2, 3, 4, 5;
