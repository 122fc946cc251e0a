"""Finance alerts: what failed, by how much, where the evidence is and how to release, by e-mail
(``finance_smtp``) and by JSON webhook (``finance_webhook``); never with secrets in them."""
