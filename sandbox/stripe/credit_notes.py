"""Credit notes in the Stripe sandbox: create, preview, list, retrieve, update, void; customer balance credit.

Mixed into :class:`sandbox.stripe.state.StripeState`. The rules, as Stripe documents them:

* Only finalized invoices (``open``, ``paid``, ``uncollectible``) take credit notes.
* The amount is ``amount`` or the sum of ``lines`` (``invoice_line_item`` lines credit an invoice line, by
  ``amount`` or ``quantity``; ``custom_line_item`` lines credit ``unit_amount`` x ``quantity``). All credit notes
  of an invoice (void ones excepted) together cannot exceed its ``total``.
* Tax: a ``custom_line_item`` line may carry ``tax_rates`` (active Tax Rate ids; only on that type); an
  ``invoice_line_item`` line takes its invoice item's rates. Each line's tax is computed per line and rate as on
  invoice lines (``sandbox.stripe.tax_rates.line_tax``: half-up in the minor unit; exclusive on top of the line's
  amount, inclusive inside it) and shown as the line's ``taxes``; the line's ``amount`` stays the gross amount
  credited, excluding exclusive tax. The credit note's ``total_taxes`` sums them per rate; ``subtotal`` is the
  lines' amounts, ``total`` = ``amount`` = subtotal + exclusive tax, ``total_excluding_tax`` /
  ``subtotal_excluding_tax`` = subtotal - inclusive tax.
* On an open or uncollectible invoice the credit first reduces ``amount_remaining``: that part is the
  ``pre_payment_amount`` (the invoice's ``pre_payment_credit_notes_amount`` grows). What is left is the
  ``post_payment_amount``, which ``refund_amount`` (a new Refund of the invoice's charges, newest charge first,
  with its balance transaction) + ``refunds[]`` (existing refunds linked by id) + ``credit_amount`` (the
  customer's ``balance``, negative = credit, through a customer balance transaction) + ``out_of_band_amount``
  must equal exactly; otherwise 400. An open invoice credited down to nothing remaining becomes ``paid``.
* Void (``POST /v1/credit_notes/{id}/void``) is allowed while nothing the credit note did has been consumed:
  refunds it created must still be ``pending`` (they are canceled, their money returns), its customer balance
  credit must still be unused (the balance still holds at least that credit), and a pre-payment credit cannot
  be voided once its invoice is paid. Voiding restores the invoice's amounts and the customer's balance.

Events: ``credit_note.created``, ``credit_note.updated`` (memo/metadata), ``credit_note.voided``, and the
invoice's ``invoice.updated`` (or ``invoice.paid``), ``customer.updated`` for balance changes, and the
refunds' own ``refund.created`` / ``charge.refunded``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.stripe import wire
from sandbox.stripe.wire import ApiError, invalid, not_found

__all__ = ["CREDIT_NOTE_REASONS", "CreditNoteMixin"]

CREDIT_NOTE_REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
EMBEDDED_LINES = 10
_LINE_PARAMS = ("amount", "description", "invoice_line_item", "metadata", "quantity", "tax_amounts", "tax_rates",
                "type", "unit_amount", "unit_amount_decimal")  # fmt: skip
_CREATE_PARAMS = ("invoice", "amount", "lines", "reason", "memo", "metadata", "refund_amount", "credit_amount",
                  "out_of_band_amount", "refunds", "effective_at", "email_type", "shipping_cost")  # fmt: skip


class CreditNoteMixin:
    """See the module docstring."""

    now: Callable[[], int]
    new_id: Callable[[str], str]
    emit: Callable[..., str]

    def _init_credit_notes(self) -> None:
        from sandbox.stripe.state import Collection

        self.credit_notes = Collection("credit_note", "/v1/credit_notes", indexed=("invoice", "customer"))
        self.customer_balance_transactions = Collection(
            "customer_balance_transaction", "/v1/customers/balance_transactions", indexed=("customer",)
        )
        self.credit_note_lines: dict[str, list[dict[str, Any]]] = {}  # cn_ -> lines
        self.credit_note_refunds: dict[str, list[str]] = {}  # cn_ -> refunds it created (not merely linked)
        for collection, prefix in ((self.credit_notes, "cn"), (self.customer_balance_transactions, "cbtxn")):
            self.by_kind[collection.name] = collection
            self.by_prefix[prefix] = collection
        self.renderers[self.credit_notes] = self.render_credit_note

    # ------------------------------------------------------------------ rendering

    def render_credit_note(self, note: dict[str, Any], lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        data = self.credit_note_lines.get(note["id"], []) if lines is None else lines
        return {
            **note,
            "lines": {"object": "list", "data": data[:EMBEDDED_LINES], "has_more": len(data) > EMBEDDED_LINES,
                      "total_count": len(data), "url": f"/v1/credit_notes/{note['id']}/lines"},
        }  # fmt: skip

    # ------------------------------------------------------------------ planning (shared by create and preview)

    def _credited_before(self, invoice_id: str) -> int:
        notes = self.credit_notes
        return sum(
            notes.objects[notes.ids[p]]["amount"]
            for p in notes.index["invoice"].get(invoice_id, [])
            if notes.objects[notes.ids[p]]["status"] == "issued"
        )

    def _note_lines(self, invoice: dict[str, Any], raw: list[Any]) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        invoice_lines = set(self.invoice_lines.get(invoice["id"], []))
        for n, line in enumerate(raw):
            prefix = f"lines[{n}]"
            if not isinstance(line, dict):
                raise invalid(f"Invalid hash: {prefix}", param=prefix)
            wire.check_known(line, _LINE_PARAMS)
            kind = wire.param_enum(line, "type", ("invoice_line_item", "custom_line_item"))
            if kind is None:
                raise invalid(f"Missing required param: {prefix}[type].", f"{prefix}[type]", "parameter_missing")
            quantity = wire.param_int(line, "quantity", minimum=0)
            description = wire.param_str(line, "description")
            source_line = None
            if kind == "invoice_line_item":
                line_id = wire.param_str(line, "invoice_line_item") or ""
                if line_id not in invoice_lines:
                    raise invalid(f"No such invoice line item on {invoice['id']}: '{line_id}'",
                                  param=f"{prefix}[invoice_line_item]")  # fmt: skip
                source_line = self.lines[line_id]
                if "amount" in line:
                    amount = wire.amount(line["amount"], invoice["currency"], f"{prefix}[amount]", minimum=0)
                elif quantity is not None:
                    unit = source_line["amount"] // max(source_line["quantity"] or 1, 1)
                    amount = unit * quantity
                else:
                    amount = source_line["amount"]
                if amount > source_line["amount"]:
                    raise invalid(f"The credit amount for line {line_id} ({amount}) cannot exceed the line's amount "
                                  f"({source_line['amount']}).", param=f"{prefix}[amount]")  # fmt: skip
                description = description or source_line["description"]
                unit_amount = amount // quantity if quantity else amount
                if "tax_rates" in line:
                    raise invalid("tax_rates is only valid when the type is custom_line_item",
                                  param=f"{prefix}[tax_rates]")  # fmt: skip
                item_id = ((source_line.get("parent") or {}).get("invoice_item_details") or {}).get("invoice_item")
                rates = list((self.invoice_items.get(item_id) or {}).get("tax_rates") or []) if item_id else []
            else:
                unit_amount = wire.amount(wire.required(line, "unit_amount"), invoice["currency"],
                                          f"{prefix}[unit_amount]", minimum=0)  # fmt: skip
                quantity = 1 if quantity is None else quantity
                amount = unit_amount * quantity
                rates = self.tax_rate_objects(line["tax_rates"], f"{prefix}[tax_rates]") if line.get(
                    "tax_rates") else []  # fmt: skip
            # the line's tax, per line and per rate, rounded once half-up, as on invoice lines: exclusive on top
            # of the amount, inclusive inside it (the line's amount stays the gross amount credited)
            taxes = self.line_taxes(amount, {"tax_rates": rates})
            lines.append({
                "id": None, "object": "credit_note_line_item", "amount": amount, "description": description,
                "discount_amount": 0, "discount_amounts": [],
                "invoice_line_item": source_line["id"] if source_line else None, "livemode": False,
                "metadata": wire.metadata(line.get("metadata"), name=f"{prefix}[metadata]"),
                "pretax_credit_amounts": [], "quantity": quantity if quantity is not None else 1, "tax_rates": rates,
                "taxes": taxes, "type": kind, "unit_amount": unit_amount, "unit_amount_decimal": str(unit_amount),
            })  # fmt: skip
        return lines

    def _credit_note_plan(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate a create/preview request and work out every amount; nothing is changed."""
        wire.check_known(params, _CREATE_PARAMS)
        invoice_id = wire.param_str(params, "invoice") or ""
        wire.required(params, "invoice")
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise not_found("invoice", invoice_id, "invoice", status=400)
        currency = invoice["currency"]
        raw_lines = wire.param_list(params, "lines")
        lines = self._note_lines(invoice, raw_lines) if raw_lines else []
        parts = {name: wire.param_int(params, name, 0, minimum=0) or 0
                 for name in ("refund_amount", "credit_amount", "out_of_band_amount")}  # fmt: skip
        linked: list[tuple[dict[str, Any], int]] = []
        for n, entry in enumerate(wire.param_list(params, "refunds") or []):
            if not isinstance(entry, dict):
                raise invalid(f"Invalid hash: refunds[{n}]", param=f"refunds[{n}]")
            wire.check_known(entry, ("refund", "amount_refunded", "type", "payment_record_refund"))
            refund_id = wire.param_str(entry, "refund") or ""
            refund = self.refunds.get(refund_id)
            if refund is None or refund["charge"] not in self.invoice_charges.get(invoice_id, []):
                raise invalid(f"No such refund of a payment of {invoice_id}: '{refund_id}'",
                              param=f"refunds[{n}][refund]")  # fmt: skip
            linked.append((refund, wire.param_int(entry, "amount_refunded", refund["amount"], minimum=1) or 0))
        taxes = _tax_totals(lines)
        # the credit note's amount is its total: the lines' gross amounts plus their exclusive tax
        lines_total = sum(line["amount"] for line in lines) + sum(
            t["amount"] for t in taxes if t["tax_behavior"] == "exclusive")
        if "amount" in params and params["amount"] not in (None, ""):
            amount = wire.amount(params["amount"], currency, minimum=1)
            if lines and lines_total != amount:
                raise invalid(f"The amount ({amount}) must equal the sum of the lines with their tax "
                              f"({lines_total}).", param="amount")  # fmt: skip
        elif lines:
            amount = lines_total
        else:
            amount = sum(parts.values()) + sum(a for _, a in linked)
            if amount == 0:
                raise invalid("Missing required param: either amount or lines must be provided.", param="amount",
                              code="parameter_missing")  # fmt: skip
        reason = wire.param_enum(params, "reason", CREDIT_NOTE_REASONS)
        memo = wire.param_str(params, "memo")
        meta = wire.metadata(params.get("metadata"))
        effective_at = wire.param_int(params, "effective_at", minimum=0)
        if invoice["status"] not in ("open", "paid", "uncollectible"):
            raise ApiError(400, f"Credit notes can only be issued for finalized invoices (open, paid or "
                           f"uncollectible); invoice {invoice_id} is {invoice['status']}.",
                           param="invoice")  # fmt: skip
        if amount <= 0:
            raise ApiError(400, "A credit note must credit a positive amount.", param="amount")
        creditable = invoice["total"] - self._credited_before(invoice_id)
        if amount > creditable:
            raise ApiError(400, f"The credit note amount ({amount}) exceeds the amount that can still be credited "
                           f"on invoice {invoice_id} ({creditable}): its total ({invoice['total']}) minus earlier "
                           "credit notes.", param="amount")  # fmt: skip
        pre = min(amount, invoice["amount_remaining"]) if invoice["status"] in ("open", "uncollectible") else 0
        post = amount - pre
        linked_total = sum(a for _, a in linked)
        split = parts["refund_amount"] + parts["credit_amount"] + parts["out_of_band_amount"] + linked_total
        if split != post:
            raise ApiError(400, f"The sum of credit amount, refund amount and out of band amount ({split}) must equal "
                           f"the credit note's post-payment amount ({post}): {amount} credited, of which {pre} "
                           f"reduces the amount remaining on the invoice.", param="refund_amount")  # fmt: skip
        charges = [self.charges.objects[c] for c in reversed(self.invoice_charges.get(invoice_id, []))]
        refundable = sum(c["amount"] - c["amount_refunded"] for c in charges)
        if parts["refund_amount"] > refundable:
            raise ApiError(400, f"The refund amount ({parts['refund_amount']}) exceeds what can still be refunded "
                           f"on the payments of invoice {invoice_id} ({refundable}).",
                           param="refund_amount")  # fmt: skip
        return {"invoice": invoice, "currency": currency, "amount": amount, "lines": lines, "pre": pre, "post": post,
                "parts": parts, "linked": linked, "charges": charges, "reason": reason, "memo": memo, "meta": meta,
                "effective_at": effective_at, "taxes": taxes}  # fmt: skip

    def _note_object(self, plan: dict[str, Any], note_id: str | None, number: str | None) -> dict[str, Any]:
        invoice, now = plan["invoice"], self.now()
        pre, post = plan["pre"], plan["post"]
        exclusive = sum(t["amount"] for t in plan["taxes"] if t["tax_behavior"] == "exclusive")
        inclusive = sum(t["amount"] for t in plan["taxes"] if t["tax_behavior"] == "inclusive")
        subtotal = plan["amount"] - exclusive  # the lines' gross amounts (an amount without lines has no tax)
        return {
            "id": note_id, "object": "credit_note", "amount": plan["amount"], "amount_shipping": 0, "created": now,
            "currency": plan["currency"], "customer": invoice["customer"], "customer_account": None,
            "customer_balance_transaction": None, "discount_amount": 0, "discount_amounts": [],
            "effective_at": plan["effective_at"] or now, "invoice": invoice["id"], "livemode": False,
            "memo": plan["memo"], "metadata": plan["meta"], "number": number,
            "out_of_band_amount": plan["parts"]["out_of_band_amount"] or None,
            "pdf": f"{self.base_url}/cn/{note_id}/pdf" if note_id else None, "post_payment_amount": post,
            "pre_payment_amount": pre, "pretax_credit_amounts": [], "reason": plan["reason"],
            "refunds": [{"amount_refunded": a, "payment_record_refund": None, "refund": r["id"], "type": "refund"}
                        for r, a in plan["linked"]],
            "shipping_cost": None, "status": "issued", "subtotal": subtotal,
            "subtotal_excluding_tax": subtotal - inclusive, "total": plan["amount"],
            "total_excluding_tax": subtotal - inclusive, "total_taxes": [dict(t) for t in plan["taxes"]],
            "type": "pre_payment" if post == 0 else "post_payment" if pre == 0 else "mixed", "voided_at": None,
        }  # fmt: skip

    # ------------------------------------------------------------------ API

    def api_preview_credit_note(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/credit_notes/preview``: the credit note a create would make; nothing is stored."""
        plan = self._credit_note_plan(params)
        note = self._note_object(plan, None, None)
        refund_left = plan["parts"]["refund_amount"]
        for charge in plan["charges"]:  # the refunds it would create, without ids
            take = min(refund_left, charge["amount"] - charge["amount_refunded"])
            if take > 0:
                note["refunds"].append({"amount_refunded": take, "payment_record_refund": None, "refund": None,
                                        "type": "refund"})  # fmt: skip
                refund_left -= take
        return self.render_credit_note(note, plan["lines"])

    def api_create_credit_note(self, params: dict[str, Any]) -> dict[str, Any]:
        plan = self._credit_note_plan(params)
        invoice = plan["invoice"]
        issued = len(self.credit_notes.index["invoice"].get(invoice["id"], []))  # void ones keep their number
        note_id = self.new_id("cn")
        note = self._note_object(plan, note_id, f"{invoice['number']}-CN-{issued + 1:02d}")
        lines = plan["lines"]
        for line in lines:
            line["id"] = self.new_id("cnli")
        self.credit_note_lines[note_id] = lines
        # refunds: new ones across the invoice's charges, newest first
        refund_left = plan["parts"]["refund_amount"]
        created: list[str] = []
        for charge in plan["charges"]:
            take = min(refund_left, charge["amount"] - charge["amount_refunded"])
            if take <= 0:
                continue
            refund = self._make_refund(charge, take, reason=None, metadata={})
            note["refunds"].append({"amount_refunded": take, "payment_record_refund": None, "refund": refund["id"],
                                    "type": "refund"})  # fmt: skip
            created.append(refund["id"])
            refund_left -= take
            if refund_left == 0:
                break
        self.credit_note_refunds[note_id] = created
        credit = plan["parts"]["credit_amount"]
        if credit:
            note["customer_balance_transaction"] = self._customer_balance_change(
                invoice, -credit, note_id, "credit_note", f"Credit note {note['number']}"
            )["id"]
        self.credit_notes.add(note)
        self.emit("credit_note.created", self.render_credit_note(note))
        before = self._credit_fields(invoice)
        invoice["pre_payment_credit_notes_amount"] += plan["pre"]
        invoice["post_payment_credit_notes_amount"] += plan["post"]
        invoice["amount_remaining"] -= plan["pre"]
        if invoice["status"] in ("open", "uncollectible") and invoice["amount_remaining"] == 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = self.now()
            self.emit("invoice.paid", self.render_invoice(invoice), self._changes(before, invoice))
        else:
            self.emit("invoice.updated", self.render_invoice(invoice), self._changes(before, invoice))
        return self.render_credit_note(note)

    @staticmethod
    def _credit_fields(invoice: dict[str, Any]) -> dict[str, Any]:
        return {k: invoice[k] for k in ("amount_remaining", "pre_payment_credit_notes_amount",
                                        "post_payment_credit_notes_amount", "status")}  # fmt: skip

    def _customer_balance_change(
        self, invoice: dict[str, Any], amount: int, note_id: str, kind: str, description: str
    ) -> dict[str, Any]:
        customer = self.customers.objects[invoice["customer"]]
        previous = {"balance": customer["balance"]}
        customer["balance"] += amount
        entry = {
            "id": self.new_id("cbtxn"), "object": "customer_balance_transaction", "amount": amount,
            "checkout_session": None, "created": self.now(), "credit_note": note_id, "currency": invoice["currency"],
            "customer": customer["id"], "customer_account": None, "description": description,
            "ending_balance": customer["balance"], "invoice": invoice["id"], "livemode": False, "metadata": {},
            "type": kind,
        }  # fmt: skip
        self.customer_balance_transactions.add(entry)
        self.emit("customer.updated", customer, previous)
        return entry

    def api_update_credit_note(self, cid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("memo", "metadata"))
        note = self._get(self.credit_notes, cid)
        before = {"memo": note["memo"], "metadata": note["metadata"]}
        if "memo" in params:
            note["memo"] = wire.param_str(params, "memo") or None
        meta = wire.metadata(params.get("metadata"), note["metadata"])
        if meta != note["metadata"]:
            self.credit_notes.set_metadata(note, meta)
        previous = {k: v for k, v in before.items() if note[k] != v}
        if previous:
            self.emit("credit_note.updated", self.render_credit_note(note), previous)
        return self.render_credit_note(note)

    def api_void_credit_note(self, cid: str) -> dict[str, Any]:
        note = self._get(self.credit_notes, cid)
        if note["status"] != "issued":
            raise ApiError(400, f"Credit note {cid} is already void.")
        invoice = self.invoices.objects[note["invoice"]]
        refunds = [self.refunds.objects[r] for r in self.credit_note_refunds.get(cid, [])]
        made = [r["id"] for r in refunds if r["status"] == "succeeded"]
        if made:
            raise ApiError(400, f"Credit note {cid} cannot be voided: its refund {', '.join(made)} has already been "
                           "made. Only a credit note whose refunds are still pending can be voided.")  # fmt: skip
        credit = -self.customer_balance_transactions.objects[note["customer_balance_transaction"]]["amount"] if (
            note["customer_balance_transaction"]) else 0  # fmt: skip
        customer = self.customers.objects[note["customer"]]
        if credit and customer["balance"] > -credit:
            raise ApiError(400, f"Credit note {cid} cannot be voided: the {credit} it credited to the customer's "
                           f"balance has been used (the balance is now {customer['balance']}).")  # fmt: skip
        if note["pre_payment_amount"] and invoice["status"] == "paid":
            raise ApiError(400, f"Credit note {cid} cannot be voided: invoice {invoice['id']} has been paid since "
                           "it was issued.")  # fmt: skip
        for refund in refunds:
            if refund["status"] == "pending":
                self._return_refund(refund, "canceled", None)
        if credit:
            self._customer_balance_change(invoice, credit, cid, "credit_note", f"Void of credit note {note['number']}")
        previous = {"status": "issued", "voided_at": None}
        note["status"] = "void"
        note["voided_at"] = self.now()
        self.emit("credit_note.voided", self.render_credit_note(note), previous)
        before = self._credit_fields(invoice)
        invoice["pre_payment_credit_notes_amount"] -= note["pre_payment_amount"]
        invoice["post_payment_credit_notes_amount"] -= note["post_payment_amount"]
        invoice["amount_remaining"] += note["pre_payment_amount"]
        self.emit("invoice.updated", self.render_invoice(invoice), self._changes(before, invoice))
        return self.render_credit_note(note)

    def api_list_credit_notes(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "customer", "customer_account", "invoice", "limit", "starting_after",
                                  "ending_before"))  # fmt: skip
        invoice = wire.param_str(params, "invoice")
        customer = wire.param_str(params, "customer")
        index = ("invoice", invoice) if invoice else ("customer", customer) if customer else None
        pred = (lambda n: n["customer"] == customer) if invoice and customer else None
        return self.credit_notes.page(params, index=index, pred=pred, render=self.render_credit_note)

    def api_list_credit_note_lines(self, cid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("limit", "starting_after", "ending_before"))
        self._get(self.credit_notes, cid)
        lines = self.credit_note_lines.get(cid, [])
        limit = wire.param_int(params, "limit", 10, minimum=1, maximum=100) or 10
        after = wire.param_str(params, "starting_after")
        ids = [line["id"] for line in lines]
        start = ids.index(after) + 1 if after in ids else 0
        return {"object": "list", "data": lines[start : start + limit], "has_more": start + limit < len(lines),
                "url": f"/v1/credit_notes/{cid}/lines"}  # fmt: skip

    # ------------------------------------------------------------------ customer balance

    def api_create_customer_balance_transaction(self, cid: str, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/customers/{id}/balance_transactions``: adjust the customer's balance (negative = credit
        the next finalized invoice uses up); type ``adjustment``, ``customer.updated``."""
        wire.check_known(params, ("amount", "currency", "description", "metadata"))
        customer = self._get(self.customers, cid)
        currency = wire.currency(wire.required(params, "currency"))
        amount = wire.amount(wire.required(params, "amount"), currency)
        description = wire.param_str(params, "description")
        meta = wire.metadata(params.get("metadata"))
        if customer["currency"] not in (None, currency):
            raise invalid(f"The customer's balance is in {customer['currency']}; balance transactions must use that "
                          "currency.", param="currency")  # fmt: skip
        if amount == 0:
            raise invalid("The amount must not be zero.", param="amount")
        customer["currency"] = currency
        previous = {"balance": customer["balance"]}
        customer["balance"] += amount
        entry = {
            "id": self.new_id("cbtxn"), "object": "customer_balance_transaction", "amount": amount,
            "checkout_session": None, "created": self.now(), "credit_note": None, "currency": currency,
            "customer": cid, "customer_account": None, "description": description or None,
            "ending_balance": customer["balance"], "invoice": None, "livemode": False, "metadata": meta,
            "type": "adjustment",
        }  # fmt: skip
        self.customer_balance_transactions.add(entry)
        self.emit("customer.updated", customer, previous)
        return entry

    def api_update_customer_balance_transaction(self, cid: str, tid: str, params: dict[str, Any]) -> dict:
        wire.check_known(params, ("description", "metadata"))
        entry = self._customer_entry(cid, tid)
        if "description" in params:
            entry["description"] = wire.param_str(params, "description") or None
        meta = wire.metadata(params.get("metadata"), entry["metadata"])
        if meta != entry["metadata"]:
            self.customer_balance_transactions.set_metadata(entry, meta)
        return entry

    def _customer_entry(self, cid: str, tid: str) -> dict[str, Any]:
        self._get(self.customers, cid)
        entry = self.customer_balance_transactions.get(tid)
        if entry is None or entry["customer"] != cid:
            raise not_found("customer_balance_transaction", tid)
        return entry

    def apply_customer_balance(self, invoice: dict[str, Any]) -> None:
        """At finalization, as Stripe does: a credit balance (negative) pays what it can of the invoice, a debit
        balance (positive) is added to it; ``starting_balance``/``ending_balance`` record it, an
        ``applied_to_invoice`` customer balance transaction and ``customer.updated`` the customer's side."""
        customer = self.customers.objects[invoice["customer"]]
        balance = customer["balance"]
        invoice["starting_balance"] = invoice["ending_balance"] = balance
        if balance == 0 or customer["currency"] not in (None, invoice["currency"]) or invoice["total"] < 0:
            invoice["starting_balance"] = invoice["ending_balance"] = 0
            return
        change = min(-balance, invoice["amount_due"]) if balance < 0 else -balance
        if change == 0:
            return
        invoice["amount_due"] -= change
        invoice["amount_remaining"] = max(
            invoice["amount_due"] - invoice["amount_paid"] - invoice["pre_payment_credit_notes_amount"], 0
        )
        previous = {"balance": balance}
        customer["balance"] = invoice["ending_balance"] = balance + change
        entry = {
            "id": self.new_id("cbtxn"), "object": "customer_balance_transaction", "amount": change,
            "checkout_session": None, "created": self.now(), "credit_note": None, "currency": invoice["currency"],
            "customer": customer["id"], "customer_account": None, "description": None,
            "ending_balance": customer["balance"], "invoice": invoice["id"], "livemode": False, "metadata": {},
            "type": "applied_to_invoice",
        }  # fmt: skip
        self.customer_balance_transactions.add(entry)
        self.emit("customer.updated", customer, previous)

    def api_list_customer_balance_transactions(self, cid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "invoice", "limit", "starting_after", "ending_before"))
        self._get(self.customers, cid)
        invoice = wire.param_str(params, "invoice")
        return self.customer_balance_transactions.page(
            params, index=("customer", cid), pred=(lambda t: t["invoice"] == invoice) if invoice else None,
            url=f"/v1/customers/{cid}/balance_transactions",
        )


def _tax_totals(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The credit note's ``total_taxes``: its lines' ``taxes`` summed per Tax Rate (as an invoice's are)."""
    by_rate: dict[str, dict[str, Any]] = {}
    for line in lines:
        for tax in line["taxes"]:
            total = by_rate.setdefault(tax["tax_rate_details"]["tax_rate"], {**tax, "amount": 0, "taxable_amount": 0})
            total["amount"] += tax["amount"]
            total["taxable_amount"] += tax["taxable_amount"]
    return list(by_rate.values())
