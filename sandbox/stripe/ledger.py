"""The cash side of the Stripe sandbox: balance transactions, the balance, refunds, disputes, automatic payouts.

Mixed into :class:`sandbox.stripe.state.StripeState` (same lock, clock, ids, events and collections).

Every movement of the account balance is one balance transaction (``txn_``), in the SETTLEMENT currency:

============================  ===================  ====================  ======  ===============================
movement                      ``type``             ``reporting_category`` sign  available
============================  ===================  ====================  ======  ===============================
charge                        charge               charge                +       after ``availability_delay``
refund                        refund               refund                -       at once
refund failed                 refund_failure       refund_failure        +       at once
dispute (funds withdrawn)     adjustment           dispute               -       at once; ``fee`` = dispute fee
dispute won (reinstated)      adjustment           dispute_reversal      +       at once
later Stripe fee              stripe_fee           fee                   -       at once
payout                        payout               payout                -       at once
payout failed / canceled      payout_failure /     payout_reversal       +       at once
                              payout_cancel
transfer                      transfer             transfer              -       at once
transfer reversal             transfer_refund      transfer_reversal     +       at once
============================  ===================  ====================  ======  ===============================

``net`` = ``amount`` - ``fee``. A txn is ``pending`` until ``available_on`` (sandbox clock), then
``available``; ``GET /v1/balance`` sums ``net`` per currency and status from running totals (O(1) per txn).

Settlement: per presentment currency an optional settlement currency and exchange rate (Decimal, per major
unit; changeable at any time). A charge, refund or dispute converts at the rate configured at ITS time, so a
refund after a rate change leaves an FX difference, as in Stripe. Conversions and percentage fees round
half-up (see :mod:`sandbox.stripe.money`).

Automatic payouts (:meth:`LedgerMixin.run_payouts`): per settlement currency, every available transaction
not yet carried by a payout (except automatic payouts' own) is swept into one ``automatic: true`` payout if
their ``net`` sums to more than zero; ``GET /v1/balance_transactions?payout=po_...`` then lists exactly the
carried transactions plus the payout's own ``payout`` transaction (so their ``net`` sums to zero, as in
Stripe's payout reconciliation). Manual payouts, transfers and failed-payout returns are ordinary movements of
the available balance and are swept like charges.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from sandbox.stripe import wire
from sandbox.stripe.money import FeeRule, convert, fee_for, rate_of
from sandbox.stripe.wire import ApiError, invalid, not_found

__all__ = ["DEFAULT_DISPUTE_FEE", "DEFAULT_FEE", "LedgerMixin"]

DAY = 86400
DEFAULT_FEE = FeeRule(Decimal(290), 30)  # 2.9% + 30 minor units, Stripe's US card list price
DEFAULT_DISPUTE_FEE = 1500
DISPUTE_OPEN = ("warning_needs_response", "needs_response", "under_review", "warning_under_review")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "expired_uncaptured_charge")


def _fee_detail(amount: int, currency: str, description: str) -> list[dict[str, Any]]:
    if amount == 0:
        return []
    return [{"amount": amount, "application": None, "currency": currency, "description": description,
             "type": "stripe_fee"}]  # fmt: skip


class LedgerMixin:
    """Balance transactions and what creates them; see the module docstring."""

    # provided by StripeState
    now: Callable[[], int]
    new_id: Callable[[str], str]
    emit: Callable[..., str]

    def _init_ledger(self) -> None:
        from sandbox.stripe.state import Collection

        self.balance_transactions = Collection("balance_transaction", "/v1/balance_transactions", indexed=("type",))
        self.payment_intents = Collection("payment_intent", "/v1/payment_intents")
        # settlement currency -> fee rule ("*": every other currency)
        self.fee_schedule: dict[str, FeeRule] = {"*": DEFAULT_FEE}
        self.refund_fees: dict[str, FeeRule] = {}
        self.dispute_fees: dict[str, int] = {"*": DEFAULT_DISPUTE_FEE}
        # presentment currency -> (settlement currency, rate per major unit)
        self.settlement: dict[str, tuple[str, Decimal]] = {}
        self.availability_delay = 2 * DAY
        self.payout_delay = 2 * DAY
        self.refunds_pending = False
        self._balance: dict[str, list[int]] = {}  # currency -> [available net, pending net]
        self._maturing: list[tuple[int, int, str, bool]] = []  # (available_on, position, txn id, sweepable)
        self._sweepable: dict[str, list[str]] = {}  # currency -> available txns no payout carries yet
        self.txn_payout: dict[str, str] = {}  # txn_ -> the automatic po_ that carried it
        self.payout_positions: dict[str, list[int]] = {}  # automatic po_ -> positions of its txns, ascending
        self.dispute_txns: dict[str, list[str]] = {}  # dp_ -> txn_ ids, oldest first
        for collection, prefix in ((self.balance_transactions, "txn"), (self.payment_intents, "pi")):
            self.by_kind[collection.name] = collection
            self.by_prefix[prefix] = collection
        self.renderers[self.balance_transactions] = self.render_txn
        self.renderers[self.disputes] = self.render_dispute

    # ------------------------------------------------------------------ configuration

    def set_fee(self, currency: str, percent_bps: Decimal | int | str, fixed: int, *, kind: str = "charge") -> None:
        """Fee rule for ``kind`` (charge | refund) txns settled in ``currency`` (``*`` = every other)."""
        rule = FeeRule(Decimal(percent_bps), int(fixed))
        if rule.percent_bps < 0 or rule.fixed < 0:
            raise ValueError("fees are not negative")
        target = {"charge": self.fee_schedule, "refund": self.refund_fees}[kind]
        target[currency] = rule

    def set_settlement(self, presentment: str, settlement: str | None, rate: Decimal | str | int = 1) -> None:
        """Settle charges presented in ``presentment`` in ``settlement`` at ``rate`` from now on (None: itself)."""
        if settlement is None or settlement == presentment:
            self.settlement.pop(presentment, None)
            return
        self.settlement[presentment] = (wire.currency(settlement), rate_of(rate))

    @staticmethod
    def _rule(table: dict[str, Any], currency: str) -> Any:
        return table.get(currency, table.get("*"))

    def _settle(self, presentment: str, amount: int) -> tuple[str, int, float | None]:
        """(settlement currency, amount in it, exchange_rate as Stripe renders it) at the current rate."""
        target = self.settlement.get(presentment)
        if target is None:
            return presentment, amount, None
        currency, rate = target
        return currency, convert(amount, presentment, currency, rate), float(rate)

    # ------------------------------------------------------------------ balance transactions

    def _new_txn(
        self,
        *,
        type: str,
        category: str,
        amount: int,
        currency: str,
        source: str | None,
        fee: int = 0,
        fee_details: list[dict[str, Any]] | None = None,
        exchange_rate: float | None = None,
        description: str | None = None,
        delayed: bool = False,
        sweep: bool = True,
    ) -> dict[str, Any]:
        now = self.now()
        available_on = now + self.availability_delay if delayed else now
        net = amount - fee
        txn = {
            "id": self.new_id("txn"), "object": "balance_transaction", "amount": amount,
            "available_on": available_on, "balance_type": "payments", "created": now, "currency": currency,
            "description": description, "exchange_rate": exchange_rate, "fee": fee, "fee_details": fee_details or [],
            "net": net, "reporting_category": category, "source": source,
            "status": "pending" if available_on > now else "available", "type": type,
        }  # fmt: skip
        collection = self.balance_transactions
        collection.add(txn)
        totals = self._balance.setdefault(currency, [0, 0])
        if txn["status"] == "pending":
            totals[1] += net
            heapq.heappush(self._maturing, (available_on, collection.pos[txn["id"]], txn["id"], sweep))
        else:
            totals[0] += net
            if sweep:
                self._sweepable.setdefault(currency, []).append(txn["id"])
        return txn

    def _mature(self, now: int | None = None) -> None:
        """Move every pending txn whose ``available_on`` has come to the available balance."""
        now = self.now() if now is None else now
        heap = self._maturing
        objects = self.balance_transactions.objects
        while heap and heap[0][0] <= now:
            _, _, tid, sweep = heapq.heappop(heap)
            txn = objects[tid]
            txn["status"] = "available"
            totals = self._balance[txn["currency"]]
            totals[1] -= txn["net"]
            totals[0] += txn["net"]
            if sweep:
                self._sweepable.setdefault(txn["currency"], []).append(tid)

    def render_txn(self, txn: dict[str, Any]) -> dict[str, Any]:
        if txn["status"] == "pending" and txn["available_on"] <= self.now():
            return {**txn, "status": "available"}
        return txn

    def _charge_txn(self, charge: dict[str, Any], description: str | None) -> dict[str, Any]:
        currency, amount, rate = self._settle(charge["currency"], charge["amount"])
        fee = fee_for(amount, self._rule(self.fee_schedule, currency))
        return self._new_txn(type="charge", category="charge", amount=amount, currency=currency, source=charge["id"],
                             fee=fee, fee_details=_fee_detail(fee, currency, "Stripe processing fees"),
                             exchange_rate=rate, description=description, delayed=True)  # fmt: skip

    def add_stripe_fee(self, amount: int, currency: str, description: str = "Billing - Usage Fee") -> dict[str, Any]:
        """A fee Stripe takes later (billing, Radar, ...): a ``stripe_fee`` txn of ``-amount``."""
        if int(amount) <= 0:
            raise ValueError("a Stripe fee is a positive amount (the txn is negative)")
        return self._new_txn(type="stripe_fee", category="fee", amount=-int(amount), currency=wire.currency(currency),
                             source=None, description=description)  # fmt: skip

    def _txn_ids_of(self, source: str) -> list[str]:
        """The txns whose ``source`` is ``source`` (read from the source object's own pointers)."""
        prefix = source.split("_", 1)[0]
        if prefix == "dp":
            return list(self.dispute_txns.get(source, []))
        collection = self.by_prefix.get(prefix)
        obj = collection.get(source) if collection is not None else self.reversal_by_id.get(source)
        if obj is None:
            return []
        ids = [obj.get("balance_transaction"), obj.get("failure_balance_transaction")]
        return [i for i in ids if isinstance(i, str) and i in self.balance_transactions.objects]

    def api_list_balance_transactions(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "currency", "payout", "source", "type", "limit", "starting_after",
                                  "ending_before"))  # fmt: skip
        collection = self.balance_transactions
        payout_id = wire.param_str(params, "payout")
        source = wire.param_str(params, "source")
        kind = wire.param_str(params, "type")
        cur = wire.param_str(params, "currency")
        positions: list[int] | None = None
        index = None
        preds: list[Callable[[dict[str, Any]], bool]] = []
        if payout_id:
            payout = self.payouts.get(payout_id)
            if payout is None:
                raise not_found("payout", payout_id, "payout")
            if not payout["automatic"]:
                raise invalid("Balance transaction history can only be filtered on automatic payouts, not manual "
                              f"payouts. {payout_id} is a manual payout.", param="payout")  # fmt: skip
            positions = self.payout_positions.get(payout_id, [])
        if source:
            ids = self._txn_ids_of(source)
            if positions is None:
                positions = sorted(collection.pos[i] for i in ids)
            else:
                wanted = set(ids)
                preds.append(lambda t: t["id"] in wanted)
        if kind:
            if positions is None:
                index = ("type", kind)
            else:
                preds.append(lambda t: t["type"] == kind)
        if cur:
            preds.append(lambda t: t["currency"] == cur)
        return collection.page(params, index=index, positions=positions, render=self.render_txn,
                               pred=(lambda t: all(p(t) for p in preds)) if preds else None)  # fmt: skip

    def api_balance(self) -> dict[str, Any]:
        self._mature()
        currencies = sorted(self._balance) or ["usd"]

        def entry(cur: str, which: int) -> dict[str, Any]:
            amount = self._balance.get(cur, [0, 0])[which]
            return {"amount": amount, "currency": cur, "source_types": {"card": amount}}

        return {
            "object": "balance", "available": [entry(c, 0) for c in currencies],
            "connect_reserved": [], "instant_available": [], "livemode": False,
            "pending": [entry(c, 1) for c in currencies],
            "refund_and_dispute_prefunding": {"available": [], "pending": []},
        }  # fmt: skip

    # ------------------------------------------------------------------ payment intents and charges

    def _new_charge(self, invoice: dict[str, Any], amount: int, now: int) -> dict[str, Any]:
        """A succeeded card charge (with its PaymentIntent and balance transaction) paying ``invoice``."""
        pi_id = self.new_id("pi")
        charge = {
            "id": self.new_id("ch"), "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": 0, "balance_transaction": None, "billing_details": {"email": None, "name": None},
            "captured": True, "created": now, "currency": invoice["currency"], "customer": invoice["customer"],
            "description": f"Payment for Invoice {invoice['number']}" if invoice.get("number") else None,
            "disputed": False, "failure_code": None, "failure_message": None, "livemode": False,
            "metadata": {}, "outcome": {"type": "authorized", "network_status": "approved_by_network"},
            "paid": True, "payment_intent": pi_id, "payment_method": None,
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "country": "US", "last4": "4242"}},
            "receipt_url": None, "refunded": False, "status": "succeeded",
        }  # fmt: skip
        charge["balance_transaction"] = self._charge_txn(charge, charge["description"])["id"]
        intent = {
            "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": amount, "capture_method": "automatic", "created": now,
            "currency": invoice["currency"], "customer": invoice["customer"], "description": charge["description"],
            "latest_charge": charge["id"], "livemode": False, "metadata": {}, "payment_method": None,
            "payment_method_types": ["card"], "status": "succeeded",
        }  # fmt: skip
        self.payment_intents.add(intent)
        self.charges.add(charge)
        return charge

    def _charge_of(self, params: dict[str, Any]) -> dict[str, Any]:
        charge_id = wire.param_str(params, "charge")
        intent_id = wire.param_str(params, "payment_intent")
        if charge_id and intent_id:
            raise invalid("You can only specify one of these parameters: charge, payment_intent.")
        if intent_id:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                raise not_found("payment_intent", intent_id, "payment_intent", status=400)
            charge_id = intent["latest_charge"]
        if not charge_id:
            raise invalid("One of the following params should be provided for this request: payment_intent or "
                          "charge.", code="parameter_missing")  # fmt: skip
        charge = self.charges.get(charge_id)
        if charge is None:
            raise not_found("charge", charge_id, "charge", status=400)
        return charge

    # ------------------------------------------------------------------ refunds

    def _make_refund(
        self, charge: dict[str, Any], amount: int, *, reason: str | None, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Refund ``amount`` of ``charge``: the refund, its (negative) txn, ``refund.created``, ``charge.refunded``."""
        now = self.now()
        refund: dict[str, Any] = {
            "id": self.new_id("re"), "object": "refund", "amount": amount, "balance_transaction": None,
            "charge": charge["id"], "created": now, "currency": charge["currency"], "description": None,
            "destination_details": {"type": "card", "card": {"reference": None, "reference_status": "pending",
                                                             "reference_type": "acquirer_reference_number",
                                                             "type": "refund"}},
            "failure_balance_transaction": None, "failure_reason": None, "instructions_email": None,
            "metadata": metadata or {}, "next_action": None, "payment_intent": charge["payment_intent"],
            "pending_reason": None, "reason": reason, "receipt_number": None, "source_transfer_reversal": None,
            "status": "pending" if self.refunds_pending else "succeeded", "transfer_reversal": None,
        }  # fmt: skip
        currency, settled, rate = self._settle(charge["currency"], amount)
        fee = fee_for(settled, self._rule(self.refund_fees, currency))
        txn = self._new_txn(type="refund", category="refund", amount=-settled, currency=currency, source=refund["id"],
                            fee=fee, fee_details=_fee_detail(fee, currency, "Refund fee"), exchange_rate=rate,
                            description="REFUND FOR CHARGE")  # fmt: skip
        refund["balance_transaction"] = txn["id"]
        self.refunds.add(refund)
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.emit("refund.created", refund)
        self.emit("charge.refunded", charge, previous)
        return refund

    def api_create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("amount", "charge", "currency", "customer", "instructions_email", "metadata",
                                  "origin", "payment_intent", "reason", "refund_application_fee",
                                  "reverse_transfer"))  # fmt: skip
        charge = self._charge_of(params)
        reason = wire.param_enum(params, "reason", REFUND_REASONS)
        meta = wire.metadata(params.get("metadata"))
        left = charge["amount"] - charge["amount_refunded"]
        amount = left if params.get("amount") in (None, "") else wire.amount(params["amount"], charge["currency"],
                                                                             minimum=1)  # fmt: skip
        if left == 0:
            raise ApiError(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        if amount > left:
            raise ApiError(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left}).",
                           param="amount", code="amount_too_large")  # fmt: skip
        return self._make_refund(charge, amount, reason=reason, metadata=meta)

    def api_update_refund(self, rid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("metadata",))
        refund = self._get(self.refunds, rid)
        meta = wire.metadata(params.get("metadata"), refund["metadata"])
        if meta != refund["metadata"]:
            previous = {"metadata": refund["metadata"]}
            self.refunds.set_metadata(refund, meta)
            self.emit("refund.updated", refund, previous)
        return refund

    def settle_refund(self, rid: str) -> dict[str, Any]:
        """A pending refund goes through: ``succeeded``, ``refund.updated``."""
        refund = self._get(self.refunds, rid)
        if refund["status"] != "pending":
            raise ValueError(f"refund {rid} is {refund['status']}, not pending")
        refund["status"] = "succeeded"
        self.emit("refund.updated", refund, {"status": "pending"})
        return refund

    def fail_refund(self, rid: str, reason: str = "expired_or_canceled_card") -> dict[str, Any]:
        """A refund fails: the money returns (``refund_failure`` txn), ``refund.updated`` and ``refund.failed``;
        the charge's ``amount_refunded`` goes back down."""
        refund = self._get(self.refunds, rid)
        if refund["status"] not in ("pending", "succeeded"):
            raise ValueError(f"refund {rid} is {refund['status']}; only pending or succeeded refunds can fail")
        return self._return_refund(refund, "failed", reason)

    def _return_refund(self, refund: dict[str, Any], status: str, reason: str | None) -> dict[str, Any]:
        original = self.balance_transactions.objects[refund["balance_transaction"]]
        txn = self._new_txn(type="refund_failure", category="refund_failure", amount=-original["amount"],
                            currency=original["currency"], source=refund["id"],
                            exchange_rate=original["exchange_rate"], description="REFUND FAILURE")  # fmt: skip
        previous = {"status": refund["status"], "failure_balance_transaction": None, "failure_reason": None}
        refund["status"] = status
        refund["failure_balance_transaction"] = txn["id"]
        refund["failure_reason"] = reason
        charge = self.charges.objects[refund["charge"]]
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = False
        self.emit("refund.updated", refund, previous)
        if status == "failed":
            self.emit("refund.failed", refund, previous)
        return refund

    # ------------------------------------------------------------------ disputes

    def render_dispute(self, dispute: dict[str, Any]) -> dict[str, Any]:
        txns = self.balance_transactions.objects
        return {**dispute, "balance_transactions": [self.render_txn(txns[t]) for t in self.dispute_txns.get(
            dispute["id"], [])]}  # fmt: skip

    def _withdraw_for_dispute(self, dispute: dict[str, Any]) -> None:
        currency, settled, rate = self._settle(dispute["currency"], dispute["amount"])
        fee = int(self._rule(self.dispute_fees, currency) or 0)
        txn = self._new_txn(type="adjustment", category="dispute", amount=-settled, currency=currency,
                            source=dispute["id"], fee=fee, fee_details=_fee_detail(fee, currency, "Dispute fee"),
                            exchange_rate=rate,
                            description=f"Chargeback withdrawal for {dispute['charge']}")  # fmt: skip
        self.dispute_txns.setdefault(dispute["id"], []).append(txn["id"])

    def _close_dispute(self, dispute: dict[str, Any], status: str) -> dict[str, Any]:
        if dispute["status"] not in DISPUTE_OPEN:
            raise ApiError(400, f"This dispute has already been closed: it is {dispute['status']}.")
        previous = {"status": dispute["status"]}
        dispute["status"] = status
        dispute["is_charge_refundable"] = False
        if status == "won":
            currency, settled, rate = self._settle(dispute["currency"], dispute["amount"])
            txn = self._new_txn(type="adjustment", category="dispute_reversal", amount=settled, currency=currency,
                                source=dispute["id"], exchange_rate=rate,
                                description=f"Chargeback reversal for {dispute['charge']}")  # fmt: skip
            self.dispute_txns.setdefault(dispute["id"], []).append(txn["id"])
            self.emit("charge.dispute.funds_reinstated", self.render_dispute(dispute))
        self.emit("charge.dispute.closed", self.render_dispute(dispute), previous)
        return self.render_dispute(dispute)

    def api_close_dispute(self, did: str) -> dict[str, Any]:
        """``POST /v1/disputes/{id}/close``: accept the loss."""
        return self._close_dispute(self._get(self.disputes, did), "lost")

    def api_update_dispute(self, did: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("evidence", "metadata", "submit"))
        dispute = self._get(self.disputes, did)
        before = {k: dispute[k] for k in ("metadata", "status")}
        meta = wire.metadata(params.get("metadata"), dispute["metadata"])
        if meta != dispute["metadata"]:
            self.disputes.set_metadata(dispute, meta)
        if wire.param_bool(params, "submit", True) and params.get("evidence") and dispute["status"] in DISPUTE_OPEN:
            dispute["status"] = "under_review"
        previous = {k: v for k, v in before.items() if dispute[k] != v}
        if previous:
            self.emit("charge.dispute.updated", self.render_dispute(dispute), previous)
        return self.render_dispute(dispute)

    def resolve_dispute(self, did: str, won: bool) -> dict[str, Any]:
        """The bank decides: ``won`` reinstates the amount (``dispute_reversal`` txn, the fee stays withdrawn,
        ``charge.dispute.funds_reinstated``), either way ``charge.dispute.closed``."""
        return self._close_dispute(self._get(self.disputes, did), "won" if won else "lost")

    # ------------------------------------------------------------------ payouts

    def _payout_txn(self, payout: dict[str, Any]) -> dict[str, Any]:
        return self._new_txn(type="payout", category="payout", amount=-payout["amount"], currency=payout["currency"],
                             source=payout["id"], description="STRIPE PAYOUT",
                             sweep=not payout["automatic"])  # fmt: skip

    def _payout_return_txn(self, payout: dict[str, Any], kind: str) -> dict[str, Any]:
        return self._new_txn(type=kind, category="payout_reversal", amount=payout["amount"],
                             currency=payout["currency"], source=payout["id"],
                             description="Payout failure" if kind == "payout_failure" else "Payout cancellation")

    def run_payouts(self, now: int | None = None) -> list[dict[str, Any]]:
        """The payout schedule runs at ``now`` (default: the sandbox clock; a later ``now`` moves the clock).

        First, automatic payouts whose ``arrival_date`` has passed are paid (``payout.paid`` and
        ``payout.reconciliation_completed``). Then, per settlement currency, the available transactions no
        payout carries yet are swept into one automatic payout if their net is positive (``payout.created``).
        Returns the new payouts."""
        if now is not None and int(now) > self.now():
            self.advance(int(now) - self.now())
        current = self.now()
        self._mature(current)
        for pid in [p for p, _ in self.payout_positions.items()]:
            payout = self.payouts.objects[pid]
            if payout["status"] in ("pending", "in_transit") and payout["arrival_date"] <= current:
                self.settle_payout(pid)
        made: list[dict[str, Any]] = []
        txns = self.balance_transactions
        for currency in sorted(self._sweepable):
            ids = self._sweepable[currency]
            total = sum(txns.objects[t]["net"] for t in ids)
            if not ids or total <= 0:
                continue
            payout = self._new_payout(currency, total, automatic=True, method="standard", params={})
            positions = sorted(txns.pos[t] for t in ids)
            for tid in ids:
                self.txn_payout[tid] = payout["id"]
            self._sweepable[currency] = []
            positions.append(txns.pos[payout["balance_transaction"]])
            self.payout_positions[payout["id"]] = positions
            self.emit("payout.created", payout)
            made.append(payout)
        return made

    def _new_payout(self, currency: str, amount: int, *, automatic: bool, method: str, params: dict[str, Any]) -> dict:
        now = self.now()
        payout = {
            "id": self.new_id("po"), "object": "payout", "amount": amount,
            "arrival_date": now + (0 if method == "instant" else self.payout_delay), "automatic": automatic,
            "balance_transaction": None, "created": now, "currency": currency,
            "description": wire.param_str(params, "description") if not automatic else "STRIPE PAYOUT",
            "destination": wire.param_str(params, "destination") or "ba_sandbox_default",
            "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
            "livemode": False, "metadata": wire.metadata(params.get("metadata")), "method": method,
            "original_payout": None, "reconciliation_status": "in_progress" if automatic else "not_applicable",
            "reversed_by": None,
            "source_type": wire.param_enum(params, "source_type", ("bank_account", "card", "fpx"), "card"),
            "statement_descriptor": wire.param_str(params, "statement_descriptor", max_len=22), "status": "pending",
            "trace_id": {"status": "pending", "value": None}, "type": "bank_account",
        }  # fmt: skip
        self.payouts.add(payout)
        payout["balance_transaction"] = self._payout_txn(payout)["id"]
        return payout

    # ------------------------------------------------------------------ listing helpers

    def api_list_payment_intents(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "customer", "limit", "starting_after", "ending_before"))
        customer = wire.param_str(params, "customer")
        return self.payment_intents.page(params, pred=(lambda p: p["customer"] == customer) if customer else None)

    def txns_in(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        objects = self.balance_transactions.objects
        return [self.render_txn(objects[i]) for i in ids]
