"""A local, stateful Stripe API v1 server (customers, invoices, transfers, payouts, events, signed webhooks,
and the cash side: balance transactions, fees and FX, refunds, disputes, credit notes, automatic payouts; see
docs/sandbox-stripe.md) that the real ``stripe`` Python SDK works against unchanged."""

from sandbox.stripe.server import DEFAULT_SECRET_KEY, FAULT_KINDS, StripeSandbox

__all__ = ["DEFAULT_SECRET_KEY", "FAULT_KINDS", "StripeSandbox"]
