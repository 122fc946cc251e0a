"""Cash: following the money inside Stripe (charges, balance transactions, payouts, refunds, credit notes,
disputes) into the warehouse, from the list endpoints (``sync``) and from events (``events``); see
docs/stripe-cash.md."""
