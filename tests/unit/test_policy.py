from __future__ import annotations

import pytest

from pipeline.policy import DEFAULT_POLICY, Rule, ThresholdPolicy

POLICY = ThresholdPolicy(
    "t1",
    (
        Rule("nsfw-blur", "nsfw", act_at=0.8, action="blur", review_at=0.5),
        Rule("nsfw-end", "nsfw", act_at=0.95, action="end_stream"),
        Rule("chat", "chat_toxicity", act_at=0.8, action="delete_message", review_at=0.5),
    ),
)


@pytest.mark.parametrize(
    ("scores", "action", "rule"),
    [
        ({"nsfw": 0.1}, "allow", None),
        ({"nsfw": 0.5}, "review", "nsfw-blur"),
        ({"nsfw": 0.79}, "review", "nsfw-blur"),
        ({"nsfw": 0.8}, "blur", "nsfw-blur"),
        ({"nsfw": 0.96}, "end_stream", "nsfw-end"),
        ({"chat_toxicity": 0.9}, "delete_message", "chat"),
        ({"nsfw": 0.6, "chat_toxicity": 0.9}, "delete_message", "chat"),
        ({"nsfw": 0.99, "chat_toxicity": 0.9}, "end_stream", "nsfw-end"),
        ({}, "allow", None),
        ({"unknown": 1.0}, "allow", None),
    ],
)
def test_most_severe_rule_wins(scores: dict[str, float], action: str, rule: str | None) -> None:
    d = POLICY.decide(scores)
    assert (d.action, d.rule) == (action, rule)
    assert d.enforces == (action not in ("allow", "review"))


def test_allow_names_the_top_category() -> None:
    d = POLICY.decide({"nsfw": 0.2, "chat_toxicity": 0.3})
    assert (d.action, d.category, d.score) == ("allow", "chat_toxicity", 0.3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"act_at": 1.5, "action": "blur"},
        {"act_at": 0.5, "action": "explode"},
        {"act_at": 0.5, "action": "allow"},
        {"act_at": 0.5, "action": "blur", "review_at": 0.7},
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Rule("r", "nsfw", **kwargs)  # type: ignore[arg-type]


def test_default_policy_has_a_version_and_covers_both_inputs() -> None:
    assert DEFAULT_POLICY.version
    assert {r.category for r in DEFAULT_POLICY.rules} >= {"nsfw", "chat_toxicity"}
