"""Making vendor input safe for Postgres, or saying exactly why it cannot be (issue 15 item 2).

Postgres refuses some things every vendor can send: a NUL character or a lone UTF-16 surrogate in any
``text`` or ``jsonb`` value, a ``numeric`` with more than 16,383 decimal places (``1e-100000``), an
integer beyond ``bigint`` where we cast to one, a timestamp outside its range. One such value used to
fail the whole page or batch it came in, and every retry after it. The rule everywhere is now: free
text is cleaned (the change is recorded in ``closeout.input_repairs``); an identity (an id, a type, a
currency), a number out of range or an absurd date quarantines its record with the field and the
reason; everything else in the page or batch goes on.
"""

from closeout.sanitize.values import (
    REPLACEMENT,
    clean_text,
    escape_text,
    number_problem,
    plausible_epoch,
    plausible_instant,
    printable_raw,
    text_problem,
)

__all__ = [
    "REPLACEMENT",
    "clean_text",
    "escape_text",
    "number_problem",
    "plausible_epoch",
    "plausible_instant",
    "printable_raw",
    "text_problem",
]
