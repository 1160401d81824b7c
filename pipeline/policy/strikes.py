"""Per-user strike history across streams, with exponential decay. Pure and idempotent.

A strike is recorded per enforcement action, keyed by the action's deterministic id: a
redelivered action never counts twice. The decayed total is ``sum(weight * 0.5 **
(age_s / half_life_s))`` over strikes younger than ``window_s`` and newer than the last
suspension. When it reaches ``strikes.suspend_at`` the user is suspended once; the same
trigger redelivered returns the same suspension again.

Keep a ``StrikeLedger`` per user id (a table keyed by ``user_id``, fed by actions re-keyed by
user: the chat and segment topics are keyed by stream, so this cannot live in their tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipeline.policy.model import Policy, StrikePolicy
from pipeline.policy.outcome import RuleOutcome, action_id
from pipeline.policy.state import JsonState, plain

STRIKES_RULE = "strikes"


@dataclass(frozen=True)
class Strike:
    action_id: str
    at_s: float
    weight: float
    rule: str
    category: str
    input_id: str


@dataclass(frozen=True)
class Suspension:
    trigger_action_id: str
    action_id: str
    at_s: float
    score: float


@dataclass(frozen=True)
class StrikeLedger(JsonState):
    user_id: str
    strikes: tuple[Strike, ...] = ()
    suspensions: tuple[Suspension, ...] = ()

    def score(self, now_s: float, policy: StrikePolicy) -> float:
        """Decayed strike total at ``now_s`` (strikes after the last suspension only)."""
        reset_s = max((s.at_s for s in self.suspensions), default=None)
        return sum(
            s.weight * 0.5 ** ((now_s - s.at_s) / policy.half_life_s)
            for s in self.strikes
            if now_s - policy.window_s < s.at_s <= now_s and (reset_s is None or s.at_s > reset_s)
        )

    def to_doc(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> StrikeLedger:
        return cls(
            user_id=d["user_id"],
            strikes=tuple(Strike(**s) for s in d["strikes"]),
            suspensions=tuple(Suspension(**s) for s in d["suspensions"]),
        )


def record_strike(
    policy: Policy, ledger: StrikeLedger, outcome: RuleOutcome, *, at_s: float
) -> tuple[StrikeLedger, RuleOutcome | None]:
    """Add the strike of one live ``act`` outcome (or published action); maybe suspend.

    Returns the new ledger and, when this strike brings the decayed total to
    ``strikes.suspend_at``, a ``suspend_user`` outcome (rule ``strikes``) to publish as an
    action. Idempotent: the same action id again changes nothing and returns the same result.
    """
    done = next((s for s in ledger.suspensions if s.trigger_action_id == outcome.id), None)
    if done is not None:  # redelivered trigger: the same suspension again (none for the ladder's)
        same = done.action_id != outcome.id
        return ledger, _suspension_outcome(policy, outcome, done) if same else None
    if outcome.kind != "act" or outcome.shadow or outcome.strike_weight <= 0:
        return ledger, None
    sp = policy.strikes
    if all(s.action_id != outcome.id for s in ledger.strikes):
        strike = Strike(
            outcome.id,
            at_s,
            outcome.strike_weight,
            outcome.rule,
            outcome.category,
            outcome.input_id,
        )
        kept = tuple(s for s in ledger.strikes if s.at_s > at_s - sp.window_s)
        ledger = replace(ledger, strikes=(*kept, strike))
    else:
        return ledger, None
    if outcome.action == "suspend_user":  # suspended by the ladder itself: strikes start over
        done = Suspension(outcome.id, outcome.id, at_s, round(ledger.score(at_s, sp), 6))
        return replace(ledger, suspensions=(*ledger.suspensions, done)[-16:]), None
    total = ledger.score(at_s, sp)
    if sp.suspend_at is None or total < sp.suspend_at:
        return ledger, None
    suspension = Suspension(
        trigger_action_id=outcome.id,
        action_id=action_id(outcome.input_id, policy.version, STRIKES_RULE, "suspend_user"),
        at_s=at_s,
        score=round(total, 6),
    )
    ledger = replace(ledger, suspensions=(*ledger.suspensions, suspension)[-16:])
    return ledger, _suspension_outcome(policy, outcome, suspension)


def _suspension_outcome(policy: Policy, trigger: RuleOutcome, s: Suspension) -> RuleOutcome:
    return RuleOutcome(
        kind="act",
        rule=STRIKES_RULE,
        category=trigger.category,
        score=s.score,
        input_id=trigger.input_id,
        id=s.action_id,
        action="suspend_user",
        territory=trigger.territory,
        evidence={"strikes": s.score, "suspend_at": policy.strikes.suspend_at},
    )


def outcome_from_action(policy: Policy, action: Mapping[str, Any]) -> RuleOutcome:
    """A published ``action.v1`` document as the outcome ``record_strike`` takes.

    The strike weight is the action's own ``strike_weight`` when it has one (the engine's: 0
    for a repeat within a rule's cooldown), else the policy's rule of that name (0 for the
    strikes rule itself, 1.0 for a rule the current policy no longer has).
    """
    src = action["input"]
    ref = src.get("seq", src.get("message_id"))
    rule = action["rule"]
    try:
        weight = policy.rule(rule).strike_weight
    except KeyError:
        weight = 0.0 if rule == STRIKES_RULE else 1.0
    if action.get("strike_weight") is not None:
        weight = float(action["strike_weight"])
    return RuleOutcome(
        kind="act",
        rule=rule,
        category=action["category"],
        score=float(action["scores"].get(action["category"], 0.0)),
        input_id=f"{src['kind']}:{src['stream_id']}:{ref}",
        id=action["id"],
        action=action["action"],
        strike_weight=weight,
    )
