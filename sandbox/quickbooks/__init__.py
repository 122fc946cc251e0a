"""A local, stateful QuickBooks Online Accounting API v3 server with Intuit's OAuth 2.0 token endpoint
(rotating refresh tokens, requestid replay, SyncToken conflicts, duplicate names, batch and rate limits, faults)."""

from sandbox.quickbooks.server import FAULT_KINDS, MIN_MINOR_VERSION, TOKEN_PATH, QuickBooksSandbox

__all__ = ["FAULT_KINDS", "MIN_MINOR_VERSION", "TOKEN_PATH", "QuickBooksSandbox"]
