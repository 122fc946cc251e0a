"""The accounting systems' APIs as closeout talks to them (issue 17): OAuth 2.0 with rotating refresh tokens kept
in the warehouse (``token_store``), writes through an outbox with idempotency keys derived from business identity
(``outbox``), client-side pacing under the vendors' documented limits (``pacing``), and one hook per system
(``quickbooks``). Push and read-back are built on these; nothing here decides what to push."""
