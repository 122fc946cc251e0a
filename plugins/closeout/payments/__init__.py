"""Stripe: publishing frozen drafts exactly once (``publish``) and following them through Stripe's events
(``events``). ``hook`` owns the Stripe protocol; everything else reads and writes the warehouse."""
