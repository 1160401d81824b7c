"""Batch handlers after the decision: strikes per user, and reviewer verdicts consumed back.

``StrikeKeeper`` reads the ``strikes`` topic: every live enforcement action again, keyed by
the user it holds against (the segment and chat agents publish it with the action), so that
one user's ledger lives on one partition whichever streams they offend in. It adds each
action's strike to the user's ``StrikeLedger`` (idempotent by action id: a redelivered action
never counts twice, decayed with the policy's half-life) and, when the decayed total reaches
``strikes.suspend_at``, publishes a ``suspend_user`` action (rule ``strikes``) with its DSA
statement. The ledger is saved once per batch, after the outputs are acknowledged.

``VerdictCounter`` reads the ``review_verdicts`` topic and feeds the live KPI metrics
(``pipeline.kpi``); ``streamwarden kpi`` computes the full report from the topics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pipeline import codec, kpi, metrics
from pipeline.moderator import guard
from pipeline.outputs import action_records, logged_dead_letter
from pipeline.policy import Policy, RuleOutcome, StrikeLedger, outcome_from_action, record_strike
from pipeline.records import InRecord, Outputs, OutRecord, parse_iso, utc_now_iso
from pipeline.state import STRIKES, StateStore, Touched, load, state_writes

log = logging.getLogger(__name__)


def suspension_action(
    trigger: dict[str, Any], suspension: RuleOutcome, policy: Policy
) -> dict[str, Any]:
    """The ``action.v1`` of a strikes suspension: the triggering action's input and evidence,
    with the strike total first."""
    strikes: dict[str, Any] = {
        "score": suspension.score,
        "details": {
            "strikes": suspension.score,
            "suspend_at": policy.strikes.suspend_at,
            "trigger_action_id": trigger["id"],
            "trigger_rule": trigger["rule"],
        },
    }
    return {
        "schema": "action.v1",
        "id": suspension.id,
        "result_id": trigger["result_id"],
        "input": trigger["input"],
        "action": "suspend_user",
        "category": trigger["category"],
        "rule": suspension.rule,
        "scores": trigger["scores"],
        "evidence": [strikes, *trigger["evidence"][:1]],
        "models": trigger["models"],
        "policy_version": policy.version,
        "automated": True,
        "strike_weight": 0.0,
        "decided_at": utc_now_iso(),
    }


class StrikeKeeper:
    def __init__(
        self, policy: Policy, state: StateStore, *, dead_letter_max_payload_bytes: int
    ) -> None:
        self._policy = policy
        self._state = state
        self._dl_max = dead_letter_max_payload_bytes

    async def handle(self, records: Sequence[InRecord]) -> Outputs:
        ledgers: dict[str, Touched] = {}
        out: list[OutRecord] = []
        for rec in records:
            doc = guard(lambda r: codec.decode("action.v1", r.value), rec)
            if not isinstance(doc, dict):
                out.append(logged_dead_letter(rec, doc, max_payload_bytes=self._dl_max))
                continue
            user = doc["input"].get("user_id")
            if not user:
                continue
            if user not in ledgers:
                had = load(self._state, STRIKES, user, StrikeLedger, partition=rec.partition)
                ledgers[user] = Touched(rec.partition, had or StrikeLedger(user))
            t = ledgers[user]
            assert isinstance(t.value, StrikeLedger)
            outcome = outcome_from_action(self._policy, doc)
            at_s = parse_iso(doc["decided_at"]).timestamp()
            new, suspension = record_strike(self._policy, t.value, outcome, at_s=at_s)
            if new is not t.value:
                t.value, t.dirty = new, True
                metrics.STRIKES_RECORDED.labels(outcome.category).inc()
            if suspension is not None:
                log.info("user %s suspended: strikes %.2f", user, suspension.score)
                metrics.SUSPENSIONS.inc()
                action = suspension_action(doc, suspension, self._policy)
                out += action_records(action, self._policy, strikes=False)
        return Outputs(out, state_writes(STRIKES, ledgers))


class VerdictCounter:
    """Reviewer verdicts in: Prometheus counters and gauges; a malformed one is a dead letter."""

    def __init__(self, *, dead_letter_max_payload_bytes: int) -> None:
        self._dl_max = dead_letter_max_payload_bytes

    async def handle(self, records: Sequence[InRecord]) -> list[OutRecord]:
        out: list[OutRecord] = []
        for rec in records:
            doc = guard(lambda r: codec.decode("review_verdict.v1", r.value), rec)
            if not isinstance(doc, dict):
                out.append(logged_dead_letter(rec, doc, max_payload_bytes=self._dl_max))
                continue
            kpi.observe_verdict(doc, doc)
            kpi.LIVE.verdict(doc)
        return out
