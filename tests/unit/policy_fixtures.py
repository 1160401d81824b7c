"""A small policy for the policy tests: thresholds here, not in the shipped file, so retuning
``policies/default.yaml`` never breaks a scenario test."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pipeline.policy import (
    ChatObservation,
    ChatStreamState,
    ChatUserState,
    Evaluation,
    FrameScores,
    Policy,
    SegmentObservation,
    VideoState,
    decide_chat,
    decide_segment,
    parse_policy,
)

POLICY_YAML = """\
schema: policy.v1
version: test-1
escalation: {window_s: 600}
strikes: {half_life_s: 3600, window_s: 86400, escalate_at: 3.0, suspend_at: 5.0}
durations: {timeout_user_s: 600, suspend_user_s: 86400}
rules:
  nsfw-blur:
    kind: score
    category: nsfw
    input: segment
    act_at: 0.8
    review_at: 0.5
    clear_at: 0.5
    window: {n: 2, m: 3, unit: frames}
    clear_after: 2
    ladder: video
    first_action: blur
    last_action: end_stream
    escalate_after_s: 60
    review_cooldown_s: 10
  nsfw-candidate:
    kind: score
    category: nsfw
    input: segment
    mode: shadow
    act_at: 0.6
    window: {n: 1, m: 1, unit: segments}
    ladder: video
    first_action: warn
    last_action: end_stream
  hash-end:
    kind: score
    category: hash_match
    input: segment
    act_at: 0.95
    ladder: video
    first_action: end_stream
    last_action: suspend_user
    strike_weight: 5
  ocr-solicit:
    kind: text
    category: ocr_text
    input: ocr
    detectors: [link, phone, solicitation]
    act_at: 0.9
    review_at: 0.5
    window: {n: 2, m: 3, unit: segments}
    clear_after: 2
    ladder: video
    first_action: warn
    last_action: end_stream
  chat-toxicity:
    kind: score
    category: chat_toxicity
    input: chat
    act_at: 0.8
    review_at: 0.5
    languages:
      ru: {act_at: 0.9, review_at: 0.75}
    ladder: chat
    first_action: delete_message
    last_action: suspend_user
  chat-toxicity-shadow:
    kind: score
    category: chat_toxicity
    input: chat
    mode: shadow
    act_at: 0.6
    ladder: chat
    first_action: delete_message
    last_action: timeout_user
  chat-solicit:
    kind: text
    category: spam
    input: chat
    detectors: [link, phone, solicitation]
    allow_domains: [twitch.tv]
    act_at: 0.9
    review_at: 0.5
    ladder: chat
    first_action: delete_message
    last_action: timeout_user
    cooldown_s: 30
  chat-flood:
    kind: flood
    category: spam
    input: chat
    max_messages: 3
    window_s: 10
    ladder: chat
    first_action: delete_message
    last_action: timeout_user
    cooldown_s: 10
    strike_weight: 0.5
  chat-repeat:
    kind: repeat
    category: spam
    input: chat
    max_repeats: 3
    similarity: 0.8
    window_s: 60
    ladder: chat
    first_action: delete_message
    last_action: timeout_user
    cooldown_s: 30
  chat-raid:
    kind: raid
    category: spam
    input: chat
    min_users: 3
    similarity: 0.8
    window_s: 30
    ladder: chat
    first_action: timeout_user
    last_action: timeout_user
regions:
  DE:
    rules:
      nsfw-blur: {act_at: 0.7, first_action: age_restrict}
  US:
    geo_scoped: true
    rules:
      nsfw-blur: {mode: shadow}
dsa:
  enabled: true
  categories:
    nsfw: {statement_category: STATEMENT_CATEGORY_OTHER_VIOLATION_TC, keywords: [KEYWORD_NUDITY],
           ground: incompatible, reference: "Guidelines 3", explanation: "No nudity."}
    hash_match: {statement_category: STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY,
                 keywords: [KEYWORD_TERRORIST_CONTENT], ground: illegal,
                 reference: "Regulation (EU) 2021/784", explanation: "Known terrorist content."}
    ocr_text: {statement_category: STATEMENT_CATEGORY_OTHER_VIOLATION_TC, ground: incompatible,
               reference: "Guidelines 6", explanation: "No solicitation."}
    chat_toxicity: {statement_category: STATEMENT_CATEGORY_CYBER_VIOLENCE, ground: incompatible,
                    reference: "Guidelines 2", explanation: "No abuse."}
    spam: {statement_category: STATEMENT_CATEGORY_OTHER_VIOLATION_TC, ground: incompatible,
           reference: "Guidelines 6", explanation: "No spam."}
    graphic: {statement_category: STATEMENT_CATEGORY_VIOLENCE, ground: incompatible,
              reference: "Guidelines 4", explanation: "No gore."}
"""

POLICY: Policy = parse_policy(POLICY_YAML, source="test-policy")
T0_S = 1_795_600_000.0


def segment(
    seq: int,
    nsfw: Sequence[float] = (),
    *,
    stream_id: str = "s1",
    every_s: float = 2.0,
    territory: str | None = None,
    ocr: str | None = None,
    hash_match: float | None = None,
    start_s: float = T0_S,
) -> SegmentObservation:
    frames = tuple(FrameScores(i * 500, {"nsfw": s}) for i, s in enumerate(nsfw))
    return SegmentObservation(
        stream_id=stream_id,
        seq=seq,
        at_s=start_s + every_s * (seq + 1),
        frames=frames,
        segment_scores={"hash_match": hash_match} if hash_match is not None else {},
        ocr_text=ocr,
        user_id="streamer-1",
        territory=territory,
    )


def run_segments(
    obs: Iterable[SegmentObservation],
    *,
    policy: Policy = POLICY,
    state: VideoState | None = None,
    user_strikes: float = 0.0,
) -> tuple[VideoState | None, list[Evaluation]]:
    out = []
    for o in obs:
        state, ev = decide_segment(policy, state, o, user_strikes=user_strikes)
        out.append(ev)
    return state, out


def live(ev: Evaluation) -> list[tuple[str, str, str | None]]:
    """(kind, rule, action) of the live outcomes, sorted."""
    return sorted((o.kind, o.rule, o.action) for o in ev.outcomes if not o.shadow)


def message(
    i: int,
    text: str,
    *,
    user: str = "u1",
    toxicity: float | None = 0.0,
    language: str | None = None,
    at_s: float | None = None,
    stream_id: str = "s1",
) -> ChatObservation:
    return ChatObservation(
        stream_id=stream_id,
        message_id=f"m{i:04d}",
        user_id=user,
        text=text,
        at_s=T0_S + i if at_s is None else at_s,
        toxicity=toxicity,
        language=language,
    )


class ChatRunner:
    """Holds the chat tables the way the worker would (stream key, stream|user key)."""

    def __init__(self, policy: Policy = POLICY) -> None:
        self.policy = policy
        self.streams: dict[str, ChatStreamState] = {}
        self.users: dict[str, ChatUserState] = {}

    def send(self, obs: ChatObservation, *, user_strikes: float = 0.0) -> Evaluation:
        key = f"{obs.stream_id}|{obs.user_id}"
        stream, user, ev = decide_chat(
            self.policy,
            self.streams.get(obs.stream_id),
            self.users.get(key),
            obs,
            user_strikes=user_strikes,
        )
        self.streams[obs.stream_id] = stream
        self.users[key] = user
        return ev
