"""Temporal rules for live video: scores of one segment + the stream's state -> outcomes.

Per rule and stream: trigger on ``n`` of the last ``m`` samples (sampled frames, or segments)
at or above ``act_at``; stay in force (``hold``) until ``clear_after`` consecutive samples fall
below ``clear_at`` (hysteresis); a stream that re-offends within the escalation window starts
one rung higher per prior offence; still offending ``escalate_after_s`` after an action climbs
a rung. Redelivery of a segment returns the memoised evaluation and leaves the state alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.policy.model import Policy, RuleSpec
from pipeline.policy.outcome import Evaluation, OutcomeKind, RuleOutcome, action_id, review_id
from pipeline.policy.state import (
    Offence,
    RuleWindow,
    VideoState,
    add_offences,
    memo_get,
    memo_put,
    prior_offences,
)
from pipeline.policy.text import inspect_text


@dataclass(frozen=True)
class FrameScores:
    pts_ms: int
    scores: Mapping[str, float]


@dataclass(frozen=True)
class SegmentObservation:
    """What the segment path knows about one segment once the models have run."""

    stream_id: str
    seq: int
    at_s: float  # wall-clock end of the segment, epoch seconds (started_at + duration)
    frames: tuple[FrameScores, ...] = ()
    segment_scores: Mapping[str, float] = field(default_factory=dict)  # e.g. hash_match
    ocr_text: str | None = None
    user_id: str | None = None  # the streamer
    territory: str | None = None

    @property
    def input_id(self) -> str:
        """Same as ``pipeline.outputs.Assessment.input_id`` for this segment."""
        return f"segment:{self.stream_id}:{self.seq}"


def _samples(
    rule: RuleSpec, obs: SegmentObservation
) -> tuple[list[tuple[float, int | None]], dict]:
    """This segment's samples for ``rule``: (score, frame pts or None), plus evidence."""
    if rule.kind == "text":
        if obs.ocr_text is None:
            return [], {}
        found = inspect_text(obs.ocr_text, rule.detectors, rule.allow_domains)
        return [(found.score, None)], {"ocr_text": obs.ocr_text[:500], **found.as_evidence()}
    per_frame: list[tuple[float, int | None]] = [
        (f.scores[rule.category], f.pts_ms) for f in obs.frames if rule.category in f.scores
    ]
    if not per_frame and rule.category in obs.segment_scores:
        per_frame = [(obs.segment_scores[rule.category], None)]
    if rule.window_unit == "segments" and per_frame:
        return [max(per_frame, key=lambda s: s[0])], {}
    return per_frame, {}


def _outcome(
    policy: Policy,
    rule: RuleSpec,
    obs: SegmentObservation,
    kind: OutcomeKind,
    score: float,
    **kw: Any,
) -> RuleOutcome:
    region = policy.regions.get(obs.territory or "")
    regional = policy.is_regional(rule.name, obs.territory)
    oid = ""
    if kind == "act":
        oid = action_id(obs.input_id, policy.version, rule.name, kw["action"])
    elif kind == "review":
        oid = review_id(obs.input_id, policy.version, rule.name)
    elif kind == "clear":  # published as a lift when the action in force is liftable
        oid = action_id(obs.input_id, policy.version, rule.name, "lift")
    return RuleOutcome(
        kind=kind,
        rule=rule.name,
        category=rule.category,
        score=round(score, 6),
        input_id=obs.input_id,
        id=oid,
        shadow=rule.shadow,
        territory=obs.territory,
        regional=regional,
        geo_scoped=bool(regional and region is not None and region.geo_scoped),
        strike_weight=rule.strike_weight if kind == "act" and not rule.shadow else 0.0,
        offence=kind == "act",
        **kw,
    )


def _evaluate_rule(
    policy: Policy,
    rule: RuleSpec,
    win: RuleWindow,
    obs: SegmentObservation,
    offences: tuple[Offence, ...],
    strike_bump: int,
) -> tuple[RuleWindow, RuleOutcome | None]:
    new, extra = _samples(rule, obs)
    if not new:  # nothing scored for this rule in this segment: state unchanged
        hold = _outcome(policy, rule, obs, "hold", 0.0, action=win.action, step=win.step)
        return win, hold if win.active else None
    keep = max(rule.window_m, rule.clear_after)
    samples = (*win.samples, *((obs.seq, s) for s, _ in new))[-keep:]
    win = replace(win, samples=samples)
    top_score, top_pts = max(new, key=lambda s: s[0])
    hits = sum(1 for _, s in samples[-rule.window_m :] if s >= rule.act_at)
    evidence = {
        "segment_seq": obs.seq,
        "window": {"n": rule.window_n, "m": rule.window_m, "unit": rule.window_unit, "hits": hits},
        **({"frame_pts_ms": top_pts} if top_pts is not None else {}),
        **extra,
    }
    now = obs.at_s
    if win.active:
        recent = samples[-rule.clear_after :]
        if len(recent) >= rule.clear_after and all(s < rule.clear_threshold for _, s in recent):
            out = _outcome(
                policy,
                rule,
                obs,
                "clear",
                top_score,
                action=win.action,
                step=win.step,
                evidence=evidence,
            )
            return replace(win, active=False), out
        since_action_s = now - (win.last_action_s if win.last_action_s is not None else now)
        if (
            rule.escalate_after_s is not None
            and win.last_action_s is not None
            and since_action_s >= rule.escalate_after_s
            and top_score >= rule.act_at
            and win.step < rule.last_step
        ):
            step = win.step + 1
            action = rule.actions[step]
            out = _outcome(
                policy, rule, obs, "act", top_score, action=action, step=step, evidence=evidence
            )
            return replace(win, step=step, action=action, last_action_s=now), out
        hold = _outcome(policy, rule, obs, "hold", top_score, action=win.action, step=win.step)
        return win, hold
    if hits >= rule.window_n:
        prior = prior_offences(
            offences, now, policy.escalation_window_s, include_shadow=rule.shadow
        )
        step = min(rule.first_step + prior + strike_bump, rule.last_step)
        action = rule.actions[step]
        out = _outcome(
            policy,
            rule,
            obs,
            "act",
            top_score,
            action=action,
            step=step,
            prior_offences=prior,
            evidence=evidence,
        )
        return replace(win, active=True, step=step, action=action, last_action_s=now), out
    cooled = win.last_review_s is None or now - win.last_review_s >= rule.review_cooldown_s
    if rule.review_at is not None and top_score >= rule.review_at and cooled:
        out = _outcome(policy, rule, obs, "review", top_score, evidence=evidence)
        return replace(win, last_review_s=now), out
    return win, None


def decide_segment(
    policy: Policy,
    state: VideoState | None,
    obs: SegmentObservation,
    *,
    user_strikes: float = 0.0,
) -> tuple[VideoState, Evaluation]:
    """Evaluate every segment and OCR rule on one segment; return the new state and outcomes.

    ``user_strikes`` is the streamer's decayed strike total (``StrikeLedger.score``) when known:
    at or above ``strikes.escalate_at`` every first action starts one rung higher.
    """
    state = state or VideoState(stream_id=obs.stream_id)
    memo = memo_get(state.memo, obs.input_id)
    if memo is not None:
        return state, Evaluation.from_doc(memo, replayed=True)
    if obs.seq <= state.last_seq:  # older than the memo: already evaluated, outputs published
        return state, Evaluation(obs.input_id, policy.version, (), replayed=True)
    esc = policy.strikes.escalate_at
    bump = 1 if esc is not None and user_strikes >= esc else 0
    windows: dict[str, RuleWindow] = {}  # rules no longer in the policy drop out
    outcomes: list[RuleOutcome] = []
    rules = policy.rules_for("segment", obs.territory) + policy.rules_for("ocr", obs.territory)
    for rule in rules:
        win = state.windows.get(rule.name, RuleWindow())
        windows[rule.name], out = _evaluate_rule(policy, rule, win, obs, state.offences, bump)
        if out is not None:
            outcomes.append(out)
    new_offences = tuple(
        Offence(o.id, o.input_id, obs.at_s, o.rule, o.step, o.shadow)
        for o in outcomes
        if o.kind == "act"
    )
    evaluation = Evaluation(obs.input_id, policy.version, tuple(outcomes))
    state = replace(
        state,
        last_seq=obs.seq,
        windows=windows,
        offences=add_offences(state.offences, new_offences, obs.at_s, policy.escalation_window_s),
        memo=memo_put(state.memo, obs.input_id, evaluation.to_doc()) if outcomes else state.memo,
    )
    return state, evaluation
