"""Build the output documents (result, action, review task, DSA statement, dead letter).

Pure code. An :class:`Assessment` is everything the policy engine decided about one input
(its :class:`~pipeline.policy.Evaluation`) plus the evidence each outcome rests on;
:func:`assessment_records` turns it into records:

* one **result** always: the single decision (``Evaluation.result_decision``), and every
  outcome, live and shadow, in ``outcomes`` (a shadow rule's decisions go nowhere else);
* one **action** per live ``act`` outcome (an input may carry several, and a raid outcome may
  act on an earlier message), its id the outcome's; the same document again on the
  ``strikes`` topic keyed by the user it holds against; a **DSA statement** when the policy
  enables them;
* one **review task** per live ``review`` outcome.

``hold`` (an earlier action still in force) and ``clear`` (its condition ended) outcomes only
appear in the result. Ids are the engine's (``pipeline.policy.outcome``): a hash of the input's
identity, the policy version, the rule and the action, so a redelivery yields the same ids.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import codec
from pipeline.dsa import render_statement
from pipeline.errors import InputError
from pipeline.policy import Decision, Evaluation, Policy, RuleOutcome, result_id
from pipeline.records import InRecord, OutRecord, OutTopic, deterministic_id, utc_now_iso

log = logging.getLogger(__name__)

SCHEMA_HEADER = "sw-schema"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str

    def as_doc(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class Enforcement:
    """A live ``act`` or ``review`` outcome with the evidence its record carries.

    ``input``: the outcome's own input when it is not the assessed one (a raid acts on the
    earlier messages of the raid too), else None.
    """

    outcome: RuleOutcome
    evidence: tuple[Mapping[str, Any], ...]
    input: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Assessment:
    """Everything the policy decided about one input, ready to publish."""

    input: Mapping[str, Any]  # the schema's `input` object: kind, stream_id, seq|message_id...
    scores: Mapping[str, float]
    evaluation: Evaluation
    evidence: Sequence[Mapping[str, Any]]  # the result's: what the decision rests on
    models: Sequence[ModelRef]
    enforcements: tuple[Enforcement, ...] = ()
    frames_sampled: int | None = None
    frames_deduplicated: int | None = None

    @property
    def input_id(self) -> str:
        ref = self.input.get("seq", self.input.get("message_id"))
        return f"{self.input['kind']}:{self.input['stream_id']}:{ref}"

    @property
    def policy_version(self) -> str:
        return self.evaluation.policy_version

    @property
    def decision(self) -> Decision:
        return self.evaluation.result_decision(self.scores)


def _record(
    topic: OutTopic, schema: str, key: str, doc: dict[str, Any], *extra: tuple[str, str]
) -> OutRecord:
    """Headers name the schema (and more, for routing and metrics without parsing)."""
    headers = ((SCHEMA_HEADER, schema), *extra)
    return OutRecord(
        topic=topic,
        key=key.encode(),
        value=codec.encode(schema, doc),
        headers=tuple((k, v.encode()) for k, v in headers),
    )


def outcome_summary(o: RuleOutcome) -> dict[str, Any]:
    """The result's ``outcomes`` item of one outcome."""
    doc: dict[str, Any] = {
        "rule": o.rule,
        "category": o.category,
        "kind": o.kind,
        "score": o.score,
        "shadow": o.shadow,
        "step": o.step,
    }
    if o.action is not None:
        doc["action"] = o.action
    return doc


def assessment_records(a: Assessment, policy: Policy) -> list[OutRecord]:
    """One result always; per live act an action (+ strikes feed, + DSA); per review a task."""
    now = utc_now_iso()
    d = a.decision
    rid = result_id(a.input_id, a.policy_version)
    scores = {k: round(float(v), 6) for k, v in a.scores.items()}
    models = [m.as_doc() for m in a.models]
    key = str(a.input["stream_id"])
    result: dict[str, Any] = {
        "schema": "result.v1",
        "id": rid,
        "input": dict(a.input),
        "decision": d.action,
        "category": d.category,
        "rule": d.rule,
        "scores": scores,
        "evidence": [dict(e) for e in a.evidence],
        "models": models,
        "policy_version": a.policy_version,
        "decided_at": now,
    }
    if a.evaluation.outcomes:
        result["outcomes"] = [outcome_summary(o) for o in a.evaluation.outcomes]
    if a.frames_sampled is not None:
        result["frames_sampled"] = a.frames_sampled
    if a.frames_deduplicated is not None:
        result["frames_deduplicated"] = a.frames_deduplicated
    shadow = "1" if a.evaluation.shadow else "0"
    out = [
        _record(
            "results",
            "result.v1",
            key,
            result,
            ("sw-kind", str(a.input["kind"])),
            ("sw-decision", d.action),
            ("sw-category", d.category or "none"),
            ("sw-shadow", shadow),
        )
    ]
    for e in a.enforcements:
        o = e.outcome
        src = dict(e.input) if e.input is not None else dict(a.input)
        if o.kind in ("act", "clear") and not o.shadow:  # clear: a lift (Evaluation.lifts)
            lift = o.kind == "clear"
            action: dict[str, Any] = {
                "schema": "action.v1",
                "id": o.id,
                "result_id": result_id(o.input_id, a.policy_version),
                "input": src,
                "action": "lift" if lift else o.action,
                **({"lifts": o.action} if lift else {}),
                "category": o.category,
                "rule": o.rule,
                "scores": scores,
                "evidence": [dict(x) for x in e.evidence],
                "models": models,
                "policy_version": a.policy_version,
                "step": o.step,
                "automated": True,
                "strike_weight": 0.0 if lift else o.strike_weight,
                "decided_at": now,
            }
            if o.territory:
                action["territory"] = o.territory
                action["geo_scoped"] = o.geo_scoped
            # a lift ends a restriction: it counts no strike and needs no DSA statement
            out += action_records(
                action,
                policy,
                territory=o.territory,
                geo_scoped=o.geo_scoped,
                strikes=not lift,
                dsa=not lift,
            )
        elif o.kind == "review" and not o.shadow:
            task = {
                "schema": "review_task.v1",
                "id": o.id,
                "result_id": result_id(o.input_id, a.policy_version),
                "input": src,
                "category": o.category,
                "rule": o.rule,
                "scores": scores,
                "evidence": [dict(x) for x in e.evidence],
                "policy_version": a.policy_version,
                "created_at": now,
            }
            out.append(
                _record(
                    "review",
                    "review_task.v1",
                    key,
                    task,
                    ("sw-category", o.category),
                    ("sw-rule", o.rule),
                )
            )
    return out


def action_records(
    action: dict[str, Any],
    policy: Policy,
    *,
    territory: str | None = None,
    geo_scoped: bool = False,
    strikes: bool = True,
    dsa: bool = True,
) -> list[OutRecord]:
    """The action (key: stream id); with ``strikes``, the same document keyed by the user it
    holds against, for the strikes agent; with ``dsa``, its DSA statement when the policy
    enables them."""
    headers = (
        ("sw-category", str(action["category"])),
        ("sw-rule", str(action["rule"])),
        ("sw-action", str(action["action"])),
    )
    src = action["input"]
    out = [_record("actions", "action.v1", str(src["stream_id"]), action, *headers)]
    if strikes and src.get("user_id"):
        out.append(_record("strikes", "action.v1", str(src["user_id"]), action, *headers))
    if dsa and policy.dsa.enabled:
        language = next(
            (
                e["details"]["language"]
                for e in action["evidence"]
                if e.get("details", {}).get("language")
            ),
            None,
        )
        statement = render_statement(
            action,
            policy,
            territory=territory,
            geo_scoped=geo_scoped,
            content_language=language,
            created_at=action["decided_at"],
        )
        if statement is not None:  # None: outside the DSA's territorial scope
            out.append(_record("dsa_statements", "dsa_statement.v1", action["id"], statement))
    return out


def logged_dead_letter(rec: InRecord, err: InputError, *, max_payload_bytes: int) -> OutRecord:
    """:func:`dead_letter_record`, with the warning every agent logs for it."""
    log.warning("dead letter %s reason=%s: %s", rec.ref, err.reason, err)
    return dead_letter_record(rec, err, max_payload_bytes=max_payload_bytes)


def dead_letter_record(rec: InRecord, err: InputError, *, max_payload_bytes: int) -> OutRecord:
    """The original bytes (when small enough) or a reference to them, and a reason code."""
    value = rec.value or b""
    doc: dict[str, Any] = {
        "schema": "dead_letter.v1",
        "id": deterministic_id("dead_letter", rec.topic, rec.partition, rec.offset),
        "source": {
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "key": rec.key_text(),
            "headers": {k: v.decode("utf-8", "replace") for k, v in rec.headers.items()},
        },
        "reason": err.reason,
        "message": str(err)[:2000],
        "payload_ref": rec.ref,
        "payload_bytes": len(value),
        "failed_at": utc_now_iso(),
    }
    if len(value) <= max_payload_bytes:
        doc["payload_b64"] = base64.b64encode(value).decode()
    return OutRecord(
        topic="dead_letters",
        key=rec.key,
        value=codec.encode("dead_letter.v1", doc),
        headers=((SCHEMA_HEADER, b"dead_letter.v1"), ("sw-reason", err.reason.encode())),
    )
