"""Chat stage: JSON -> message; toxicity score -> observation; evaluation -> assessment.

No Kafka inside. ``ChatContext`` keeps each stream's recent lines so that a review task can
show the reviewer the chat around the flagged message (``chat_window``). It lives in the
worker's memory, not in a table: it is evidence for people, not state the decisions depend
on, and after a restart or a rebalance a window may lack the lines from before it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline import codec
from pipeline.outputs import Assessment, Enforcement, ModelRef
from pipeline.policy import (
    ChatContextLine,
    ChatObservation,
    Evaluation,
    Policy,
    RuleOutcome,
    chat_window,
)
from pipeline.records import InRecord, parse_iso

CHAT_WINDOW_BEFORE_S = 30.0
CHAT_WINDOW_AFTER_S = 10.0
_TEXT_MAX_CHARS = 500
_DETAIL_KEYS = ("language", "messages", "repeats", "raid_users", "window_s")


@dataclass(frozen=True)
class ChatMessage:
    message_id: str
    stream_id: str
    user_id: str
    text: str
    sent_at: str
    locale: str | None = None

    @classmethod
    def from_record(cls, rec: InRecord) -> ChatMessage:
        return cls(**codec.decode("chat.v1", rec.value))

    @property
    def sent_at_s(self) -> float:
        return parse_iso(self.sent_at).timestamp()

    def context_line(self) -> ChatContextLine:
        return ChatContextLine(self.message_id, self.user_id, self.sent_at, self.text)


class TextScore(Protocol):
    @property
    def toxicity(self) -> float: ...

    @property
    def language(self) -> str: ...


def observe_chat(msg: ChatMessage, score: TextScore) -> ChatObservation:
    return ChatObservation(
        stream_id=msg.stream_id,
        message_id=msg.message_id,
        user_id=msg.user_id,
        text=msg.text,
        at_s=msg.sent_at_s,
        toxicity=float(score.toxicity),
        language=getattr(score, "language", None),
    )


class ChatContext:
    """Recent lines per stream (the last ``max_lines`` within ``keep_s`` of the newest), for
    ``max_streams`` streams at most (least recently active dropped first)."""

    def __init__(
        self, *, max_streams: int = 10_000, max_lines: int = 200, keep_s: float = 120.0
    ) -> None:
        self._streams: OrderedDict[str, deque[tuple[float, ChatContextLine]]] = OrderedDict()
        self._max_streams = max_streams
        self._max_lines = max_lines
        self._keep_s = keep_s

    def add(self, messages: Iterable[ChatMessage]) -> None:
        for m in messages:
            lines = self._streams.get(m.stream_id)
            if lines is None:
                lines = self._streams[m.stream_id] = deque(maxlen=self._max_lines)
                while len(self._streams) > self._max_streams:
                    self._streams.popitem(last=False)
            self._streams.move_to_end(m.stream_id)
            if any(line.message_id == m.message_id for _, line in lines):  # redelivered
                continue
            at_s = m.sent_at_s
            lines.append((at_s, m.context_line()))
            newest = max(t for t, _ in lines)
            while lines and lines[0][0] < newest - self._keep_s:
                lines.popleft()

    def lines(self, stream_id: str) -> list[ChatContextLine]:
        return [line for _, line in self._streams.get(stream_id, ())]

    def text_of(self, stream_id: str, message_id: str) -> str | None:
        return next((ln.text for ln in self.lines(stream_id) if ln.message_id == message_id), None)

    def window(self, msg: ChatMessage) -> tuple[Mapping[str, Any], ...]:
        return tuple(
            chat_window(
                self.lines(msg.stream_id),
                msg.sent_at,
                before_s=CHAT_WINDOW_BEFORE_S,
                after_s=CHAT_WINDOW_AFTER_S,
                flagged_message_id=msg.message_id,
            )
        )


def chat_input(rec: InRecord, msg: ChatMessage) -> dict[str, Any]:
    source: dict[str, Any] = {
        "kind": "chat",
        "stream_id": msg.stream_id,
        "message_id": msg.message_id,
        "user_id": msg.user_id,
    }
    if (produced := rec.produced_at()) is not None:
        source["produced_at"] = produced
    return source


def _evidence(
    o: RuleOutcome, msg: ChatMessage, policy: Policy, context: ChatContext
) -> dict[str, Any]:
    ev = o.evidence
    own = o.input_id == f"chat:{msg.stream_id}:{msg.message_id}"
    message_id = msg.message_id if own else str(ev.get("message_id", ""))
    item: dict[str, Any] = {"message_id": message_id, "score": o.score}
    text = msg.text if own else context.text_of(msg.stream_id, message_id)
    if text is not None:
        item["text"] = text[:_TEXT_MAX_CHARS]
    if "act_at" in ev:
        item["act_at"] = ev["act_at"]
        try:
            review_at = policy.rule_in(o.rule, None).thresholds(ev.get("language")).review_at
        except KeyError:
            review_at = None
        if review_at is not None:
            item["review_at"] = review_at
    findings = {k: list(ev[k]) for k in ("links", "phones", "terms") if ev.get(k)}
    if findings:
        item["text_findings"] = findings
    details = {k: ev[k] for k in _DETAIL_KEYS if ev.get(k) is not None}
    if not own:
        details["raid_with"] = msg.message_id
    if o.prior_offences:
        details["prior_offences"] = o.prior_offences
    if details:
        item["details"] = details
    return item


def chat_assessment(
    rec: InRecord,
    msg: ChatMessage,
    toxicity: float,
    evaluation: Evaluation,
    policy: Policy,
    *,
    model: ModelRef,
    context: ChatContext,
) -> Assessment:
    """The evaluation of one message with its evidence (review tasks: the chat window).

    Call after ``context.add`` has seen the whole batch: a window then also holds the lines
    sent right after the flagged one.
    """
    source = chat_input(rec, msg)
    enforcements = []
    for o in (*evaluation.acts, *evaluation.reviews):
        item = _evidence(o, msg, policy, context)
        own_input: dict[str, Any] | None = None
        if item["message_id"] != msg.message_id:  # a raid acts on an earlier message
            own_input = {
                "kind": "chat",
                "stream_id": msg.stream_id,
                "message_id": item["message_id"],
            }
            if o.evidence.get("user_id"):
                own_input["user_id"] = str(o.evidence["user_id"])
        if o.kind == "review" and (window := context.window(msg)):
            item["chat_window"] = [dict(x) for x in window]
        enforcements.append(Enforcement(o, (item,), own_input))
    scores = {"chat_toxicity": float(toxicity)}
    for o in evaluation.outcomes:  # text and behaviour rules score their own categories
        if o.category != "chat_toxicity":
            scores[o.category] = max(o.score, scores.get(o.category, 0.0))
    decision = evaluation.result_decision(scores)
    decisive = next(
        (e for e in enforcements if e.outcome.rule == decision.rule and e.input is None), None
    )
    evidence: Sequence[Mapping[str, Any]]
    if decisive is not None:
        evidence = [{k: v for k, v in decisive.evidence[0].items() if k != "chat_window"}]
    else:
        evidence = [
            {
                "message_id": msg.message_id,
                "text": msg.text[:_TEXT_MAX_CHARS],
                "score": round(float(toxicity), 6),
            }
        ]
    return Assessment(
        input=source,
        scores=scores,
        evaluation=evaluation,
        evidence=evidence,
        models=(model,),
        enforcements=tuple(enforcements),
    )
