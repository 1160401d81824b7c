"""Build the output documents (result, action, review task, dead letter). Pure code."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import codec
from pipeline.errors import InputError
from pipeline.policy import Decision
from pipeline.records import InRecord, OutRecord, deterministic_id, utc_now_iso

SCHEMA_HEADER = "sw-schema"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str

    def as_doc(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class Assessment:
    """Everything the policy decided about one input, ready to publish."""

    input: Mapping[str, Any]  # the schema's `input` object: kind, stream_id, seq|message_id...
    scores: Mapping[str, float]
    evidence: Sequence[Mapping[str, Any]]
    models: Sequence[ModelRef]
    decision: Decision
    policy_version: str
    frames_sampled: int | None = None

    @property
    def input_id(self) -> str:
        ref = self.input.get("seq", self.input.get("message_id"))
        return f"{self.input['kind']}:{self.input['stream_id']}:{ref}"


def _record(
    topic: Any, schema: str, key: str, doc: dict[str, Any], *extra: tuple[str, str]
) -> OutRecord:
    """Headers name the schema and, on results, the decision, so routing needs no parsing."""
    headers = ((SCHEMA_HEADER, schema), *extra)
    return OutRecord(
        topic=topic,
        key=key.encode(),
        value=codec.encode(schema, doc),
        headers=tuple((k, v.encode()) for k, v in headers),
    )


def assessment_records(a: Assessment) -> list[OutRecord]:
    """One result always; an action when the decision enforces; a review task in the band."""
    now = utc_now_iso()
    d = a.decision
    result_id = deterministic_id("result", a.input_id, a.policy_version)
    scores = {k: round(float(v), 6) for k, v in a.scores.items()}
    evidence = [dict(e) for e in a.evidence]
    models = [m.as_doc() for m in a.models]
    key = str(a.input["stream_id"])
    result: dict[str, Any] = {
        "schema": "result.v1",
        "id": result_id,
        "input": dict(a.input),
        "decision": d.action,
        "category": d.category,
        "rule": d.rule,
        "scores": scores,
        "evidence": evidence,
        "models": models,
        "policy_version": a.policy_version,
        "decided_at": now,
    }
    if a.frames_sampled is not None:
        result["frames_sampled"] = a.frames_sampled
    out = [
        _record(
            "results",
            "result.v1",
            key,
            result,
            ("sw-kind", str(a.input["kind"])),
            ("sw-decision", d.action),
            ("sw-category", d.category or "none"),
        )
    ]
    if d.enforces:
        action = {
            "schema": "action.v1",
            "id": deterministic_id("action", result_id, d.rule, d.action),
            "result_id": result_id,
            "input": dict(a.input),
            "action": d.action,
            "category": d.category,
            "rule": d.rule,
            "scores": scores,
            "evidence": evidence,
            "models": models,
            "policy_version": a.policy_version,
            "decided_at": now,
        }
        out.append(_record("actions", "action.v1", key, action))
    elif d.action == "review":
        task = {
            "schema": "review_task.v1",
            "id": deterministic_id("review", result_id, d.rule),
            "result_id": result_id,
            "input": dict(a.input),
            "category": d.category,
            "rule": d.rule,
            "scores": scores,
            "evidence": evidence,
            "policy_version": a.policy_version,
            "created_at": now,
        }
        out.append(_record("review", "review_task.v1", key, task))
    return out


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
