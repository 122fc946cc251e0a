-- Whether expense lines exist in this warehouse yet (closeout.invoice_line_expenses arrives with migration 0035).
SELECT to_regclass('closeout.invoice_line_expenses') IS NOT NULL
