"""The loaded policy as frozen dataclasses: what the YAML file says, checked and resolved.

A *rule* is the unit of tuning: it reads one category's score (or a chat behaviour), has its
thresholds, its temporal window, its rung range on a severity ladder and its mode (live or
shadow). Regional overrides replace rule fields for streams of one territory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Literal

RuleKind = Literal["score", "text", "flood", "repeat", "raid"]
RuleInput = Literal["segment", "ocr", "chat"]
WindowUnit = Literal["frames", "segments"]

LADDERS: Mapping[str, tuple[str, ...]] = {
    "video": ("warn", "blur", "age_restrict", "end_stream", "suspend_user"),
    "chat": ("delete_message", "timeout_user", "suspend_user"),
}
USER_LEVEL_ACTIONS = frozenset({"timeout_user", "suspend_user"})
CATEGORIES = ("nsfw", "graphic", "ocr_text", "chat_toxicity", "hash_match", "spam")
TEXT_DETECTORS = ("link", "phone", "solicitation")
# Fields a region may override (the rest would change what a rule *is*, not how strict it is).
OVERRIDABLE = frozenset(
    {
        "act_at",
        "review_at",
        "clear_at",
        "languages",
        "first_action",
        "last_action",
        "shadow",
        "enabled",
        "window_n",
        "window_m",
        "window_unit",
        "strike_weight",
    }
)


@dataclass(frozen=True)
class LanguageThresholds:
    """Per-language thresholds of a chat score rule (the Russian model is noisy)."""

    act_at: float
    review_at: float | None = None


@dataclass(frozen=True)
class RuleSpec:
    name: str
    kind: RuleKind
    category: str
    input: RuleInput
    ladder: str
    first_action: str
    last_action: str
    act_at: float = 1.0
    review_at: float | None = None
    clear_at: float | None = None  # hysteresis: below this, a sample counts as clean
    languages: Mapping[str, LanguageThresholds] = field(default_factory=dict)
    window_n: int = 1  # trigger on n of the last m samples at or above act_at
    window_m: int = 1
    window_unit: WindowUnit = "segments"
    clear_after: int = 1  # consecutive clean samples that clear an active rule
    escalate_after_s: float | None = None  # still offending this long after an action: next rung
    cooldown_s: float = 0.0  # chat: repeat triggers within this are message-level only
    review_cooldown_s: float = 0.0
    strike_weight: float = 1.0
    shadow: bool = False
    enabled: bool = True
    # behaviour rules (flood / repeat / raid) and text rules
    window_s: float = 0.0
    max_messages: int = 0
    max_repeats: int = 0
    similarity: float = 1.0
    min_users: int = 0
    detectors: tuple[str, ...] = ()
    allow_domains: tuple[str, ...] = ()

    @property
    def actions(self) -> tuple[str, ...]:
        return LADDERS[self.ladder]

    @property
    def first_step(self) -> int:
        return self.actions.index(self.first_action)

    @property
    def last_step(self) -> int:
        return self.actions.index(self.last_action)

    @property
    def clear_threshold(self) -> float:
        if self.clear_at is not None:
            return self.clear_at
        return self.review_at if self.review_at is not None else self.act_at

    def thresholds(self, language: str | None) -> LanguageThresholds:
        """``act_at``/``review_at`` for a chat message in ``language`` (default: the rule's)."""
        if language is not None and language in self.languages:
            return self.languages[language]
        return LanguageThresholds(self.act_at, self.review_at)

    def action_at(self, step: int) -> str:
        return self.actions[max(self.first_step, min(step, self.last_step))]

    def problems(self) -> list[tuple[str, str]]:
        """(YAML key, message) for what the JSON Schema cannot check; empty when consistent."""
        out: list[tuple[str, str]] = []
        if self.ladder not in LADDERS:
            return [("ladder", f"unknown ladder {self.ladder!r}")]
        for key in ("first_action", "last_action"):
            if getattr(self, key) not in self.actions:
                msg = f"{getattr(self, key)!r} is not on the {self.ladder} ladder"
                out.append((key, msg))
        if not out and self.first_step > self.last_step:
            out.append(("first_action", "comes after last_action on the ladder"))
        if self.review_at is not None and self.review_at >= self.act_at:
            out.append(("review_at", "must be below act_at"))
        for lang, th in self.languages.items():
            if th.review_at is not None and th.review_at >= th.act_at:
                out.append((f"languages/{lang}/review_at", "must be below act_at"))
        if self.clear_at is not None and self.clear_at > self.act_at:
            out.append(("clear_at", "must not exceed act_at"))
        if self.window_n > self.window_m:
            out.append(("window", "n must not exceed m"))
        if self.kind in ("flood", "repeat", "raid") and self.window_s <= 0:
            out.append(("window_s", f"a {self.kind} rule needs window_s > 0"))
        if self.kind == "text" and not self.detectors:
            out.append(("detectors", "a text rule needs at least one detector"))
        return out

    def overridden(self, changes: Mapping[str, Any]) -> RuleSpec:
        return replace(self, **dict(changes))


@dataclass(frozen=True)
class Region:
    """Overrides for streams whose segment metadata names this territory."""

    territory: str
    rules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    geo_scoped: bool = False  # enforcement applies to viewers in the territory only


@dataclass(frozen=True)
class StrikePolicy:
    half_life_s: float = 7 * 86400.0
    window_s: float = 30 * 86400.0
    escalate_at: float | None = None  # decayed strikes at or above: start one rung higher
    suspend_at: float | None = None  # decayed strikes at or above: suspend the user


@dataclass(frozen=True)
class DsaCategory:
    """How enforcement in one category is described in a DSA statement of reasons."""

    statement_category: str
    ground: Literal["illegal", "incompatible"]
    reference: str  # the legal provision, or the terms-and-conditions section
    explanation: str
    keywords: tuple[str, ...] = ()
    reference_url: str | None = None


@dataclass(frozen=True)
class DsaSettings:
    enabled: bool = False
    categories: Mapping[str, DsaCategory] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[RuleSpec, ...]
    regions: Mapping[str, Region] = field(default_factory=dict)
    escalation_window_s: float = 1800.0
    strikes: StrikePolicy = field(default_factory=StrikePolicy)
    timeout_user_s: float = 600.0
    suspend_user_s: float = 0.0  # 0: indefinite
    dsa: DsaSettings = field(default_factory=DsaSettings)

    @cached_property
    def _by_territory(self) -> dict[str | None, tuple[RuleSpec, ...]]:
        out: dict[str | None, tuple[RuleSpec, ...]] = {None: self.rules}
        for code, region in self.regions.items():
            out[code] = tuple(r.overridden(region.rules.get(r.name, {})) for r in self.rules)
        return out

    def rules_for(self, rule_input: RuleInput, territory: str | None) -> tuple[RuleSpec, ...]:
        """Enabled rules reading ``rule_input``, with the territory's overrides applied."""
        rules = self._by_territory.get(territory, self.rules)
        return tuple(r for r in rules if r.enabled and r.input == rule_input)

    def rule_in(self, name: str, territory: str | None) -> RuleSpec:
        """The rule of that name as applied in ``territory`` (regional overrides included)."""
        for r in self._by_territory.get(territory, self.rules):
            if r.name == name:
                return r
        raise KeyError(name)

    def is_regional(self, rule: str, territory: str | None) -> bool:
        region = self.regions.get(territory or "")
        return region is not None and rule in region.rules

    def rule(self, name: str) -> RuleSpec:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)


RULE_FIELDS = frozenset(f.name for f in fields(RuleSpec))
