"""Strike history: decay, windows, idempotent updates, suspension once."""

from __future__ import annotations

import orjson
import pytest

from pipeline.policy import RuleOutcome, StrikeLedger, outcome_from_action, record_strike
from pipeline.policy.strikes import STRIKES_RULE
from tests.unit.policy_fixtures import POLICY, T0_S

HOUR_S = 3600.0  # the fixture's half-life


def strike(n: int, weight: float = 1.0, action: str = "delete_message") -> RuleOutcome:
    return RuleOutcome(
        kind="act",
        rule="chat-toxicity",
        category="chat_toxicity",
        score=0.9,
        input_id=f"chat:s1:m{n}",
        id=f"{n:032x}",
        action=action,
        strike_weight=weight,
        offence=True,
    )


def add(ledger: StrikeLedger, *items: tuple[RuleOutcome, float]) -> StrikeLedger:
    for outcome, at_s in items:
        ledger, _ = record_strike(POLICY, ledger, outcome, at_s=at_s)
    return ledger


@pytest.mark.parametrize(
    ("ages_h", "expected"),
    [
        ([0.0], 1.0),
        ([1.0], 0.5),  # one half-life
        ([2.0], 0.25),
        ([0.0, 1.0, 2.0], 1.75),
        ([25.0], 0.0),  # outside the 24 h window
    ],
)
def test_strikes_decay_with_the_half_life(ages_h: list[float], expected: float) -> None:
    now = T0_S + 30 * HOUR_S
    ledger = add(StrikeLedger("u1"), *((strike(i), now - h * HOUR_S) for i, h in enumerate(ages_h)))
    assert ledger.score(now, POLICY.strikes) == pytest.approx(expected)


def test_a_redelivered_action_never_counts_twice() -> None:
    once = add(StrikeLedger("u1"), (strike(1), T0_S))
    twice = add(once, (strike(1), T0_S + 5))
    assert twice == once
    assert twice.score(T0_S, POLICY.strikes) == pytest.approx(1.0)


def test_shadow_reviews_and_weightless_outcomes_leave_no_strike() -> None:
    shadow = RuleOutcome(**{**strike(1).to_doc(), "shadow": True})
    review = RuleOutcome(**{**strike(2).to_doc(), "kind": "review"})
    ledger = add(StrikeLedger("u1"), (shadow, T0_S), (review, T0_S), (strike(3, 0.0), T0_S))
    assert ledger.strikes == ()


def test_suspension_at_the_threshold_once_and_again_on_redelivery() -> None:
    ledger = StrikeLedger("u1")
    results = []
    for i in range(6):  # suspend_at 5.0, weights 1.0 a minute apart: the 6th crosses
        ledger, out = record_strike(POLICY, ledger, strike(i), at_s=T0_S + 60 * i)
        results.append(out)
    assert results[:5] == [None] * 5
    suspension = results[5]
    assert suspension is not None
    assert (suspension.action, suspension.rule, suspension.input_id) == (
        "suspend_user",
        STRIKES_RULE,
        "chat:s1:m5",
    )
    again_ledger, again = record_strike(POLICY, ledger, strike(5), at_s=T0_S + 999)
    assert again == suspension and again_ledger == ledger
    # strikes start over after a suspension
    assert ledger.score(T0_S + 360, POLICY.strikes) == 0.0
    ledger, out = record_strike(POLICY, ledger, strike(7), at_s=T0_S + 400)
    assert out is None and ledger.score(T0_S + 400, POLICY.strikes) == pytest.approx(1.0)


def test_a_ladder_suspension_resets_without_another_suspension() -> None:
    ledger = add(StrikeLedger("u1"), *((strike(i, 2.0), T0_S + i) for i in range(2)))
    ledger, out = record_strike(POLICY, ledger, strike(9, 2.0, "suspend_user"), at_s=T0_S + 5)
    assert out is None
    assert ledger.score(T0_S + 5, POLICY.strikes) == 0.0


def test_ledger_round_trips_through_json() -> None:
    ledger = add(StrikeLedger("u1"), *((strike(i, 2.0), T0_S + i) for i in range(4)))
    assert ledger.suspensions
    assert StrikeLedger.from_doc(orjson.loads(orjson.dumps(ledger.to_doc()))) == ledger
    assert StrikeLedger.from_json(ledger.to_json()) == ledger


def test_published_action_becomes_a_strike_with_the_rule_weight() -> None:
    doc = {
        "id": "f" * 32,
        "input": {"kind": "segment", "stream_id": "s1", "seq": 4},
        "action": "blur",
        "category": "nsfw",
        "rule": "hash-end",
        "scores": {"nsfw": 0.2, "hash_match": 1.0},
    }
    outcome = outcome_from_action(POLICY, {**doc, "category": "hash_match"})
    assert (outcome.input_id, outcome.strike_weight, outcome.score) == ("segment:s1:4", 5, 1.0)
    assert outcome_from_action(POLICY, {**doc, "rule": "gone"}).strike_weight == 1.0
    assert outcome_from_action(POLICY, {**doc, "rule": STRIKES_RULE}).strike_weight == 0.0
