"""Chat rules: one message + the stream's and the user's chat state -> outcomes.

Rule kinds on the chat path: ``score`` (a model score, thresholds per language), ``text``
(links, phone numbers, solicitation in any spelling), ``flood`` (more than ``max_messages`` a
user within ``window_s``), ``repeat`` (``max_repeats`` identical or near-identical messages
within ``window_s``) and ``raid`` (``min_users`` first-time chatters with similar messages
within ``window_s``; the earlier raid messages are acted on too).

Each trigger is an offence of the user: the action is the rule's first rung plus one per
earlier offence (distinct messages) within the escalation window. Triggers of the same rule
within its ``cooldown_s`` act on the message only (first rung) and are not counted again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.policy.model import Policy, RuleSpec
from pipeline.policy.outcome import Evaluation, RuleOutcome, action_id, review_id
from pipeline.policy.state import (
    ChatLine,
    ChatStreamState,
    ChatUserState,
    Newcomer,
    Offence,
    add_offences,
    memo_get,
    memo_put,
    prior_offences,
)
from pipeline.policy.text import inspect_text, script_language, similarity, skeleton

_LINES_MAX = 200
_NEWCOMERS_MAX = 500
_FINGERPRINT_CHARS = 200
_MIN_REPEAT_CHARS = 4  # "gg" said thrice is chatter, not spam (the flood rule still applies)


@dataclass(frozen=True)
class ChatObservation:
    stream_id: str
    message_id: str
    user_id: str
    text: str
    at_s: float  # sent_at, epoch seconds
    toxicity: float | None = None  # the chat_toxicity model's score
    language: str | None = None  # the model's label ("en", "ru"); None: guessed from the script
    scores: Mapping[str, float] = field(default_factory=dict)  # other categories' scores
    territory: str | None = None

    @property
    def input_id(self) -> str:
        """Same as ``pipeline.outputs.Assessment.input_id`` for this message."""
        return f"chat:{self.stream_id}:{self.message_id}"


@dataclass(frozen=True)
class _Trigger:
    rule: RuleSpec
    score: float
    review: bool  # in the review band only
    evidence: Mapping[str, Any]
    raid: tuple[Newcomer, ...] = ()


def _score_rule(rule: RuleSpec, obs: ChatObservation) -> _Trigger | None:
    evidence: dict[str, Any] = {}
    if rule.kind == "text":
        found = inspect_text(obs.text, rule.detectors, rule.allow_domains)
        score, evidence = found.score, found.as_evidence()
    else:
        value = obs.toxicity if rule.category == "chat_toxicity" else obs.scores.get(rule.category)
        if value is None:
            return None
        score = float(value)
    language = obs.language or script_language(obs.text)
    th = rule.thresholds(language)
    evidence = {**evidence, "language": language, "act_at": th.act_at}
    if score >= th.act_at:
        return _Trigger(rule, score, False, evidence)
    if th.review_at is not None and score >= th.review_at:
        return _Trigger(rule, score, True, evidence)
    return None


def _behaviour_rule(
    rule: RuleSpec,
    obs: ChatObservation,
    lines: tuple[ChatLine, ...],
    fingerprint: str,
    newcomers: tuple[Newcomer, ...],
    first_time: bool,
) -> _Trigger | None:
    since = obs.at_s - rule.window_s
    recent = [line for line in lines if line.at_s > since]
    if rule.kind == "flood" and len(recent) > rule.max_messages:
        return _Trigger(rule, 1.0, False, {"messages": len(recent), "window_s": rule.window_s})
    if rule.kind == "repeat" and len(fingerprint) >= _MIN_REPEAT_CHARS:
        same = [ln for ln in recent if similarity(fingerprint, ln.fingerprint) >= rule.similarity]
        if len(same) >= rule.max_repeats:
            return _Trigger(rule, 1.0, False, {"repeats": len(same), "window_s": rule.window_s})
    if rule.kind == "raid" and first_time and len(fingerprint) >= _MIN_REPEAT_CHARS:
        alike = tuple(
            n
            for n in newcomers
            if n.at_s > since
            and n.user_id != obs.user_id
            and similarity(fingerprint, n.fingerprint) >= rule.similarity
        )
        users = {n.user_id for n in alike} | {obs.user_id}
        if len(users) >= rule.min_users:
            evidence = {"raid_users": len(users), "window_s": rule.window_s}
            return _Trigger(rule, 1.0, False, evidence, raid=alike)
    return None


def decide_chat(
    policy: Policy,
    stream: ChatStreamState | None,
    user: ChatUserState | None,
    obs: ChatObservation,
    *,
    user_strikes: float = 0.0,
) -> tuple[ChatStreamState, ChatUserState, Evaluation]:
    """Evaluate every chat rule on one message; return the new states and the outcomes.

    ``user`` is None for a user's first message in this stream (raid detection relies on it).
    ``user_strikes``: the user's decayed strike total, as in ``decide_segment``.
    """
    stream = stream or ChatStreamState(obs.stream_id)
    if user is not None and (memo := memo_get(user.memo, obs.message_id)) is not None:
        return stream, user, Evaluation.from_doc(memo, replayed=True)
    if user is not None and any(ln.message_id == obs.message_id for ln in user.lines):
        return stream, user, Evaluation(obs.input_id, policy.version, (), replayed=True)
    first_time = user is None
    user = user or ChatUserState(obs.stream_id, obs.user_id, obs.at_s, obs.at_s)
    rules = policy.rules_for("chat", obs.territory)
    keep_s = max([60.0, *(max(r.window_s, r.cooldown_s) for r in rules)])
    fingerprint = skeleton(obs.text)[:_FINGERPRINT_CHARS]
    lines = tuple(ln for ln in user.lines if ln.at_s > obs.at_s - keep_s)
    lines = (*lines, ChatLine(obs.message_id, obs.at_s, fingerprint))[-_LINES_MAX:]
    newcomers = tuple(n for n in stream.newcomers if n.at_s > obs.at_s - keep_s)
    triggers: list[_Trigger] = []
    for rule in rules:
        if rule.kind in ("score", "text"):
            t = _score_rule(rule, obs)
        else:
            t = _behaviour_rule(rule, obs, lines, fingerprint, newcomers, first_time)
        if t is not None:
            triggers.append(t)
    esc = policy.strikes.escalate_at
    bump = 1 if esc is not None and user_strikes >= esc else 0
    last_trigger = dict(user.last_trigger_s)
    outcomes: list[RuleOutcome] = []
    raided: set[str] = set()
    for t in triggers:
        outcomes.extend(_outcomes(policy, obs, t, user, last_trigger, bump))
        if not t.review:
            last_trigger[("shadow:" if t.rule.shadow else "") + t.rule.name] = obs.at_s
            if not t.rule.shadow:
                raided |= {n.message_id for n in t.raid} | ({obs.message_id} if t.raid else set())
    new_offences = tuple(
        Offence(o.id, o.input_id, obs.at_s, o.rule, o.step, o.shadow)
        for o in outcomes
        if o.offence and o.input_id == obs.input_id
    )
    if first_time:
        me = Newcomer(obs.user_id, obs.message_id, obs.input_id, obs.at_s, fingerprint)
        newcomers = (*newcomers, me)[-_NEWCOMERS_MAX:]
    newcomers = tuple(replace(n, acted=True) if n.message_id in raided else n for n in newcomers)
    evaluation = Evaluation(obs.input_id, policy.version, tuple(outcomes))
    user = replace(
        user,
        last_seen_s=max(user.last_seen_s, obs.at_s),
        lines=lines,
        offences=add_offences(user.offences, new_offences, obs.at_s, policy.escalation_window_s),
        last_trigger_s={k: v for k, v in last_trigger.items() if v > obs.at_s - keep_s},
        memo=memo_put(user.memo, obs.message_id, evaluation.to_doc()) if outcomes else user.memo,
    )
    return replace(stream, newcomers=newcomers), user, evaluation


def _outcomes(
    policy: Policy,
    obs: ChatObservation,
    t: _Trigger,
    user: ChatUserState,
    last_trigger: Mapping[str, float],
    bump: int,
) -> list[RuleOutcome]:
    rule = t.rule
    region = policy.regions.get(obs.territory or "")
    regional = policy.is_regional(rule.name, obs.territory)
    common: dict[str, Any] = {
        "rule": rule.name,
        "category": rule.category,
        "shadow": rule.shadow,
        "territory": obs.territory,
        "regional": regional,
        "geo_scoped": bool(regional and region is not None and region.geo_scoped),
    }
    if t.review:
        rid = review_id(obs.input_id, policy.version, rule.name)
        return [
            RuleOutcome(
                kind="review",
                score=round(t.score, 6),
                input_id=obs.input_id,
                id=rid,
                evidence=t.evidence,
                **common,
            )
        ]
    key = ("shadow:" if rule.shadow else "") + rule.name
    previous = last_trigger.get(key)
    cooling = previous is not None and obs.at_s - previous < rule.cooldown_s
    if cooling:  # same behaviour again: act on the message, do not count a new offence
        step, prior = rule.first_step, 0
    else:
        prior = prior_offences(
            user.offences, obs.at_s, policy.escalation_window_s, include_shadow=rule.shadow
        )
        step = min(rule.first_step + prior + bump, rule.last_step)
    action = rule.actions[step]
    weight = 0.0 if rule.shadow or cooling else rule.strike_weight
    out = [
        RuleOutcome(
            kind="act",
            score=round(t.score, 6),
            input_id=obs.input_id,
            id=action_id(obs.input_id, policy.version, rule.name, action),
            action=action,
            step=step,
            prior_offences=prior,
            offence=not cooling,
            strike_weight=weight,
            evidence=t.evidence,
            **common,
        )
    ]
    first = rule.actions[rule.first_step]
    for n in t.raid:  # earlier messages of the raid, not acted on yet
        if n.acted:
            continue
        out.append(
            RuleOutcome(
                kind="act",
                score=round(t.score, 6),
                input_id=n.input_id,
                id=action_id(n.input_id, policy.version, rule.name, first),
                action=first,
                step=rule.first_step,
                strike_weight=0.0 if rule.shadow else rule.strike_weight,
                evidence={**t.evidence, "user_id": n.user_id, "message_id": n.message_id},
                **common,
            )
        )
    return out
