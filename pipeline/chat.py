"""Chat stage: JSON -> message; toxicity score -> assessment. No Kafka inside."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import codec
from pipeline.outputs import Assessment, ModelRef
from pipeline.policy import ThresholdPolicy
from pipeline.records import InRecord


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


def assess_chat(
    rec: InRecord,
    msg: ChatMessage,
    toxicity: float,
    *,
    model: ModelRef,
    policy: ThresholdPolicy,
) -> Assessment:
    scores = {"chat_toxicity": float(toxicity)}
    decision = policy.decide(scores)
    source = {
        "kind": "chat",
        "stream_id": msg.stream_id,
        "message_id": msg.message_id,
        "user_id": msg.user_id,
    }
    if (produced := rec.produced_at()) is not None:
        source["produced_at"] = produced
    evidence = [{"message_id": msg.message_id, "text": msg.text[:500], "score": round(toxicity, 6)}]
    return Assessment(
        input=source,
        scores=scores,
        evidence=evidence,
        models=(model,),
        decision=decision,
        policy_version=policy.version,
    )
