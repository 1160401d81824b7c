"""Per-stream and per-user state of the policy engine: frozen, JSON-serialisable, bounded.

Each ``to_doc()`` is plain JSON (dicts, lists, str, float, int, bool, None) for a Faust table;
``from_doc()`` restores it. Updates return new objects, never mutate.

Which table holds what (every key starts with the stream id, so it is co-partitioned with the
segments and chat topics, which are keyed by stream id):

* ``VideoState``      key ``stream_id``            segment path
* ``ChatStreamState`` key ``stream_id``            chat path (raid detection)
* ``ChatUserState``   key ``stream_id|user_id``    chat path (flood, repeats, offences)
* ``StrikeLedger``    key ``user_id``              a strikes agent fed by actions re-keyed by user
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Self

import orjson

MEMO_MAX = 64  # evaluations with outcomes kept per stream (video) / user (chat) for redeliveries


def plain(obj: Any) -> Any:
    """JSON-ready copy of a state object (no deep copy of leaves: states are immutable)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [plain(x) for x in obj]
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    return obj


class JsonState:
    """``to_json``/``from_json``: the fast path for a Faust table with raw values."""

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson writes dataclasses and tuples natively

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.from_doc(orjson.loads(data))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Offence:
    """An enforcement action taken, as history for escalation (keyed by its action id)."""

    action_id: str
    input_id: str
    at_s: float
    rule: str
    step: int
    shadow: bool = False

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> Offence:
        return cls(**d)


def prior_offences(
    offences: tuple[Offence, ...], now_s: float, window_s: float, *, include_shadow: bool
) -> int:
    """Distinct inputs that drew an action within ``window_s`` before ``now_s``."""
    return len(
        {
            o.input_id
            for o in offences
            if now_s - window_s <= o.at_s <= now_s and (include_shadow or not o.shadow)
        }
    )


def add_offences(
    offences: tuple[Offence, ...], new: tuple[Offence, ...], now_s: float, keep_s: float
) -> tuple[Offence, ...]:
    """Idempotent (by action id) and pruned to ``keep_s``."""
    known = {o.action_id for o in offences}
    merged = offences + tuple(o for o in new if o.action_id not in known)
    return tuple(o for o in merged if o.at_s >= now_s - keep_s)


def memo_get(memo: tuple[tuple[str, Any], ...], key: str) -> Any | None:
    return next((doc for k, doc in memo if k == key), None)


def memo_put(memo: tuple[tuple[str, Any], ...], key: str, doc: Any) -> tuple[tuple[str, Any], ...]:
    return (*tuple(m for m in memo if m[0] != key), (key, doc))[-MEMO_MAX:]


@dataclass(frozen=True)
class RuleWindow:
    """A temporal rule on one stream: recent samples and whether the rule is in force."""

    samples: tuple[tuple[int, float], ...] = ()  # (segment seq, score), oldest first
    active: bool = False
    step: int = 0
    action: str | None = None
    last_action_s: float | None = None
    last_review_s: float | None = None

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> RuleWindow:
        return cls(**{**d, "samples": tuple((int(s), float(v)) for s, v in d["samples"])})


@dataclass(frozen=True)
class VideoState(JsonState):
    stream_id: str
    last_seq: int = -1
    windows: Mapping[str, RuleWindow] = field(default_factory=dict)
    offences: tuple[Offence, ...] = ()
    memo: tuple[tuple[str, Any], ...] = ()  # (input_id, evaluation doc)

    def to_doc(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> VideoState:
        return cls(
            stream_id=d["stream_id"],
            last_seq=int(d["last_seq"]),
            windows={k: RuleWindow.from_doc(v) for k, v in d["windows"].items()},
            offences=tuple(Offence.from_doc(o) for o in d["offences"]),
            memo=tuple((k, v) for k, v in d["memo"]),
        )


@dataclass(frozen=True)
class ChatLine:
    message_id: str
    at_s: float
    fingerprint: str  # text skeleton, for near-duplicate detection

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> ChatLine:
        return cls(**d)


@dataclass(frozen=True)
class ChatUserState(JsonState):
    """One user in one stream's chat."""

    stream_id: str
    user_id: str
    first_seen_s: float
    last_seen_s: float
    lines: tuple[ChatLine, ...] = ()
    offences: tuple[Offence, ...] = ()
    last_trigger_s: Mapping[str, float] = field(default_factory=dict)  # rule -> time
    memo: tuple[tuple[str, Any], ...] = ()  # (message_id, evaluation doc)

    @property
    def key(self) -> str:
        return user_key(self.stream_id, self.user_id)

    def to_doc(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> ChatUserState:
        return cls(
            stream_id=d["stream_id"],
            user_id=d["user_id"],
            first_seen_s=float(d["first_seen_s"]),
            last_seen_s=float(d["last_seen_s"]),
            lines=tuple(ChatLine.from_doc(x) for x in d["lines"]),
            offences=tuple(Offence.from_doc(o) for o in d["offences"]),
            last_trigger_s=dict(d["last_trigger_s"]),
            memo=tuple((k, v) for k, v in d["memo"]),
        )


def user_key(stream_id: str, user_id: str) -> str:
    """Table key of a ``ChatUserState``: starts with the stream id (co-partitioned)."""
    return f"{stream_id}|{user_id}"


@dataclass(frozen=True)
class Newcomer:
    """A first-time chatter's first message, kept for raid detection."""

    user_id: str
    message_id: str
    input_id: str
    at_s: float
    fingerprint: str
    acted: bool = False

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> Newcomer:
        return cls(**d)


@dataclass(frozen=True)
class ChatStreamState(JsonState):
    stream_id: str
    newcomers: tuple[Newcomer, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> ChatStreamState:
        return cls(d["stream_id"], tuple(Newcomer.from_doc(n) for n in d["newcomers"]))
