"""The first policy: per-category thresholds with a review band below each action threshold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Rule:
    """``score >= act_at`` takes ``action``; ``review_at <= score < act_at`` asks a human."""

    name: str
    category: str
    act_at: float
    action: str
    review_at: float | None = None

    def __post_init__(self) -> None:
        if self.action not in SEVERITY or self.action in ("allow", "review"):
            raise ValueError(f"rule {self.name}: unknown action {self.action!r}")
        if not 0.0 <= self.act_at <= 1.0:
            raise ValueError(f"rule {self.name}: act_at must be in [0, 1]")
        if self.review_at is not None and not 0.0 <= self.review_at < self.act_at:
            raise ValueError(f"rule {self.name}: review_at must be in [0, act_at)")


@dataclass(frozen=True)
class Decision:
    action: str
    category: str | None
    rule: str | None
    score: float

    @property
    def enforces(self) -> bool:
        return self.action not in ("allow", "review")


@dataclass(frozen=True)
class ThresholdPolicy:
    version: str
    rules: tuple[Rule, ...]

    def decide(self, scores: Mapping[str, float]) -> Decision:
        """The most severe action any rule takes; ties go to the higher score."""
        best: tuple[int, float, Decision] | None = None
        for rule in self.rules:
            score = scores.get(rule.category)
            if score is None:
                continue
            if score >= rule.act_at:
                action = rule.action
            elif rule.review_at is not None and score >= rule.review_at:
                action = "review"
            else:
                continue
            rank = (SEVERITY.index(action), score)
            if best is None or rank > best[:2]:
                best = (*rank, Decision(action, rule.category, rule.name, score))
        if best is not None:
            return best[2]
        top = max(scores.items(), key=lambda kv: kv[1], default=(None, 0.0))
        return Decision("allow", top[0], None, top[1])


def default_policy(version: str) -> ThresholdPolicy:
    return ThresholdPolicy(
        version=version,
        rules=(
            Rule("nsfw-blur", "nsfw", act_at=0.80, action="blur", review_at=0.50),
            Rule("nsfw-end", "nsfw", act_at=0.97, action="end_stream"),
            Rule("hash-match-end", "hash_match", act_at=1.0, action="end_stream"),  # PDQ bank
            Rule(
                "chat-toxic-delete",
                "chat_toxicity",
                act_at=0.80,
                action="delete_message",
                review_at=0.50,
            ),
            Rule("chat-toxic-timeout", "chat_toxicity", act_at=0.98, action="timeout_user"),
        ),
    )


DEFAULT_POLICY = default_policy("threshold-2026.11.1")
