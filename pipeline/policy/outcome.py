"""What the policy engine returns for one input: an ``Evaluation`` of ``RuleOutcome``s.

Ids follow ``pipeline.outputs`` exactly, so the engine can key strikes by the id the published
action will carry: result = H("result", input_id, version); action = H("action", result, rule,
action); review task = H("review", result, rule); a lift is the action ``lift``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from pipeline.policy.model import USER_LEVEL_ACTIONS
from pipeline.records import deterministic_id

OutcomeKind = Literal["act", "review", "hold", "clear"]

# Most severe last. ``review`` sits between allow and every enforcement action.
SEVERITY: tuple[str, ...] = (
    "allow",
    "review",
    "warn",
    "delete_message",
    "blur",
    "timeout_user",
    "age_restrict",
    "end_stream",
    "suspend_user",
)


# Restrictions an enforcement service can undo: when the rule that imposed one clears, the
# engine's "clear" becomes a ``lift`` action. Warnings, ended streams and suspensions stay.
LIFTABLE_ACTIONS = frozenset({"blur", "age_restrict"})


@dataclass(frozen=True)
class Decision:
    """The one decision a result record states (``Evaluation.result_decision``)."""

    action: str
    category: str | None
    rule: str | None
    score: float

    @property
    def enforces(self) -> bool:
        return self.action not in ("allow", "review")


def result_id(input_id: str, policy_version: str) -> str:
    return deterministic_id("result", input_id, policy_version)


def action_id(input_id: str, policy_version: str, rule: str, action: str) -> str:
    return deterministic_id("action", result_id(input_id, policy_version), rule, action)


def review_id(input_id: str, policy_version: str, rule: str) -> str:
    return deterministic_id("review", result_id(input_id, policy_version), rule)


@dataclass(frozen=True)
class RuleOutcome:
    """One rule's verdict on one input.

    ``act``: a new enforcement action (``id`` is the action id). ``review``: a human should
    look (``id`` is the review task id). ``hold``: an earlier action is still in force (no new
    record). ``clear``: the rule's condition has ended (hysteresis), the action may be lifted.
    A ``shadow`` outcome goes to results only: never to actions, review tasks or strikes.
    """

    kind: OutcomeKind
    rule: str
    category: str
    score: float
    input_id: str
    id: str = ""
    action: str | None = None
    shadow: bool = False
    step: int = 0  # rung on the rule's ladder
    prior_offences: int = 0  # offences within the escalation window that set the rung
    offence: bool = False  # an act that counts in the escalation history of its subject
    territory: str | None = None
    regional: bool = False  # a regional override shaped this outcome
    geo_scoped: bool = False  # enforce for viewers in ``territory`` only
    strike_weight: float = 0.0
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def user_level(self) -> bool:
        return self.action in USER_LEVEL_ACTIONS

    def to_doc(self) -> dict[str, Any]:
        """Compact: fields at their default are left out (``from_doc`` restores them)."""
        doc: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _REQUIRED or value != _DEFAULTS.get(f.name):
                doc[f.name] = dict(value) if isinstance(value, Mapping) else value
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RuleOutcome:
        return cls(**doc)


_REQUIRED = frozenset({"kind", "rule", "category", "score", "input_id"})
_DEFAULTS: dict[str, Any] = {
    "id": "",
    "action": None,
    "shadow": False,
    "step": 0,
    "prior_offences": 0,
    "offence": False,
    "territory": None,
    "regional": False,
    "geo_scoped": False,
    "strike_weight": 0.0,
    "evidence": {},
}


@dataclass(frozen=True)
class Evaluation:
    input_id: str
    policy_version: str
    outcomes: tuple[RuleOutcome, ...] = ()
    replayed: bool = False  # a redelivered input: the memoised evaluation, state unchanged

    def _live(self, kind: OutcomeKind) -> tuple[RuleOutcome, ...]:
        return tuple(o for o in self.outcomes if o.kind == kind and not o.shadow)

    @property
    def acts(self) -> tuple[RuleOutcome, ...]:
        """New enforcement actions: one action record each."""
        return self._live("act")

    @property
    def reviews(self) -> tuple[RuleOutcome, ...]:
        """Review tasks to create."""
        return self._live("review")

    @property
    def holds(self) -> tuple[RuleOutcome, ...]:
        return self._live("hold")

    @property
    def clears(self) -> tuple[RuleOutcome, ...]:
        return self._live("clear")

    @property
    def lifts(self) -> tuple[RuleOutcome, ...]:
        """Clears that undo a restriction in force: one ``lift`` action record each."""
        return tuple(o for o in self.clears if o.action in LIFTABLE_ACTIONS)

    @property
    def shadow(self) -> tuple[RuleOutcome, ...]:
        """Shadow outcomes: for the result record only."""
        return tuple(o for o in self.outcomes if o.shadow)

    def result_decision(self, scores: Mapping[str, float] | None = None) -> Decision:
        """The single decision of the result record: the most severe new action, else the most
        severe action still in force, else review, else allow (naming the top category)."""
        for group in (self.acts, self.holds):
            if group:
                top = max(group, key=lambda o: (SEVERITY.index(o.action or "allow"), o.score))
                return Decision(top.action or "allow", top.category, top.rule, top.score)
        if self.reviews:
            top = max(self.reviews, key=lambda o: o.score)
            return Decision("review", top.category, top.rule, top.score)
        best = max((scores or {}).items(), key=lambda kv: kv[1], default=(None, 0.0))
        return Decision("allow", best[0], None, best[1])

    def to_doc(self) -> dict[str, Any]:
        return {
            "input_id": self.input_id,
            "policy_version": self.policy_version,
            "outcomes": [o.to_doc() for o in self.outcomes],
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], *, replayed: bool = False) -> Evaluation:
        return cls(
            input_id=doc["input_id"],
            policy_version=doc["policy_version"],
            outcomes=tuple(RuleOutcome.from_doc(o) for o in doc["outcomes"]),
            replayed=replayed,
        )
