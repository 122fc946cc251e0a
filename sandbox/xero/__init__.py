"""A local, stateful Xero Accounting API server with Xero's OAuth 2.0 token endpoint (rotating refresh tokens with a
30-minute grace, Idempotency-Key replay, unique contact names, summarizeErrors, per-tenant minute/day/concurrent
limits with their headers and Retry-After, faults)."""

from sandbox.xero.server import FAULT_KINDS, TOKEN_PATH, XeroSandbox

__all__ = ["FAULT_KINDS", "TOKEN_PATH", "XeroSandbox"]
