"""DSA statements of reasons: every action type yields a statement valid against the schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pipeline import codec
from pipeline.dsa import EEA, render_statement
from pipeline.errors import ConfigError, SchemaError
from pipeline.policy import LADDERS
from schemas import SCHEMA_DIR
from tests.unit.policy_fixtures import POLICY

ALL_ACTIONS = sorted({a for ladder in LADDERS.values() for a in ladder})


def action_doc(action: str, kind: str = "segment", category: str = "nsfw", **extra: Any) -> dict:
    src: dict[str, Any] = {"kind": kind, "stream_id": "live-secret-stream", "user_id": "alice-42"}
    if kind == "segment":
        src["seq"] = 7
        evidence = [
            {"segment_seq": 7, "frame_pts_ms": 500, "frame_time": "2026-11-24T23:59:59.500Z"}
        ]
    else:
        src["message_id"] = "msg-secret-1"
        evidence = [{"message_id": "msg-secret-1", "text": "you are a secret idiot", "score": 0.97}]
    src["produced_at"] = "2026-11-25T00:00:01.000Z"
    doc = {
        "schema": "action.v1",
        "id": "0123456789abcdef0123456789abcdef",
        "result_id": "fedcba9876543210fedcba9876543210",
        "input": src,
        "action": action,
        "category": category,
        "rule": "nsfw-blur" if category == "nsfw" else "chat-toxicity",
        "scores": {category: 0.97},
        "evidence": evidence,
        "models": [{"name": "m", "version": "1"}],
        "policy_version": POLICY.version,
        "decided_at": "2026-11-25T00:00:02.000Z",
    }
    return {**doc, **extra}


@pytest.mark.parametrize("kind", ["segment", "chat"])
@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_every_action_type_yields_a_valid_statement(action: str, kind: str) -> None:
    category = "nsfw" if kind == "segment" else "chat_toxicity"
    doc = render_statement(action_doc(action, kind, category), POLICY)
    assert doc is not None
    codec.validate("dsa_statement.v1", doc)
    st = doc["statement"]
    assert st["puid"] == doc["action_id"] == "0123456789abcdef0123456789abcdef"
    assert st["automated_detection"] == "Yes"
    assert st["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert st["source_type"] == "SOURCE_VOLUNTARY"
    assert st["content_type"] == ["CONTENT_TYPE_TEXT" if kind == "chat" else "CONTENT_TYPE_VIDEO"]
    assert st["application_date"] == "2026-11-25"
    assert any(k in st for k in ("decision_visibility", "decision_provision", "decision_account"))


@pytest.mark.parametrize(
    ("action", "kind", "fields"),
    [
        ("warn", "segment", {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_LABELLED"]}),
        ("blur", "segment", {"decision_visibility": ["DECISION_VISIBILITY_OTHER"]}),
        (
            "age_restrict",
            "segment",
            {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED"]},
        ),
        (
            "end_stream",
            "segment",
            {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_DISABLED"]},
        ),
        (
            "delete_message",
            "chat",
            {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"]},
        ),
        (
            "timeout_user",
            "chat",
            {
                "decision_provision": "DECISION_PROVISION_PARTIAL_SUSPENSION",
                "end_date_service_restriction": "2026-11-25",
            },
        ),
        (
            "suspend_user",
            "segment",
            {
                "decision_account": "DECISION_ACCOUNT_SUSPENDED",
                "end_date_account_restriction": "2026-11-26",  # suspend_user_s: one day
            },
        ),
    ],
)
def test_action_maps_to_the_decision_fields(action: str, kind: str, fields: dict) -> None:
    category = "nsfw" if kind == "segment" else "chat_toxicity"
    doc = render_statement(action_doc(action, kind, category), POLICY)
    assert doc is not None
    st = doc["statement"]
    assert {k: st[k] for k in fields} == fields
    if action == "blur":
        assert "blurred" in st["decision_visibility_other"]


def test_incompatible_ground_carries_its_companion_fields() -> None:
    doc = render_statement(action_doc("blur"), POLICY)
    assert doc is not None
    st = doc["statement"]
    assert st["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT"
    assert st["incompatible_content_ground"] == "Guidelines 3"
    assert st["incompatible_content_explanation"] == "No nudity."
    assert st["category"] == "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"
    assert st["category_specification"] == ["KEYWORD_NUDITY"]
    assert "illegal_content_legal_ground" not in st


def test_illegal_ground_carries_its_companion_fields() -> None:
    doc = render_statement(action_doc("end_stream", category="hash_match"), POLICY)
    assert doc is not None
    st = doc["statement"]
    assert st["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert st["illegal_content_legal_ground"] == "Regulation (EU) 2021/784"
    assert st["illegal_content_explanation"] == "Known terrorist content."
    assert "incompatible_content_ground" not in st


def test_no_personal_data_in_the_statement() -> None:
    for kind, category in (("segment", "nsfw"), ("chat", "chat_toxicity")):
        doc = render_statement(action_doc("suspend_user", kind, category), POLICY)
        text = orjson.dumps(doc).decode()
        for secret in ("live-secret-stream", "alice-42", "msg-secret-1", "secret idiot"):
            assert secret not in text


def test_facts_explain_the_rule_and_the_ladder() -> None:
    doc = render_statement(action_doc("age_restrict"), POLICY)
    assert doc is not None
    facts = doc["statement"]["decision_facts"]
    assert "0.97" in facts and "2 of the last 3 sampled frames" in facts
    assert "nsfw-blur" in facts and POLICY.version in facts and "rung 3 of 5" in facts


def test_content_date_is_the_frame_time() -> None:
    doc = render_statement(action_doc("blur"), POLICY)
    assert doc is not None and doc["statement"]["content_date"] == "2026-11-24"


@pytest.mark.parametrize(
    ("territory", "geo_scoped", "scope"),
    [
        (None, False, list(EEA)),
        ("US", False, list(EEA)),  # a global decision covers the whole EEA
        ("DE", True, ["DE"]),
        ("NO", True, ["NO"]),
        ("US", True, None),  # enforced for US viewers only: outside the DSA
    ],
)
def test_territorial_scope(territory: str | None, geo_scoped: bool, scope: list | None) -> None:
    doc = render_statement(action_doc("blur"), POLICY, territory=territory, geo_scoped=geo_scoped)
    assert (doc["statement"]["territorial_scope"] if doc else None) == scope


def test_a_reviewer_confirmed_action_is_partially_automated() -> None:
    doc = render_statement(
        action_doc("blur"), POLICY, automated_decision="AUTOMATED_DECISION_PARTIALLY"
    )
    assert doc is not None
    assert doc["statement"]["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"
    assert "reviewer" in doc["statement"]["decision_facts"]


def test_content_language_and_ids_are_stable() -> None:
    a = render_statement(
        action_doc("delete_message", "chat", "chat_toxicity"), POLICY, content_language="ru"
    )
    b = render_statement(action_doc("delete_message", "chat", "chat_toxicity"), POLICY)
    assert a is not None and b is not None
    assert a["statement"]["content_language"] == "RU"
    assert a["id"] == b["id"]  # one statement per action, whatever the redelivery


def test_category_without_mapping_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"dsa\.categories"):
        render_statement(action_doc("blur", category="graphic_gore"), POLICY)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("decision_ground", "DECISION_GROUND_ILLEGAL_CONTENT"),  # without the legal ground
        ("automated_decision", "Yes"),
        ("territorial_scope", ["US"]),
        ("puid", "has spaces"),
        ("application_date", "2019-12-31"),
        ("category", "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT"),  # API v1 only
    ],
)
def test_schema_refuses_what_the_api_refuses(field: str, value: Any) -> None:
    doc = orjson.loads((SCHEMA_DIR / "examples" / "dsa_statement.v1.json").read_bytes())
    doc["statement"][field] = value
    with pytest.raises(SchemaError):
        codec.validate("dsa_statement.v1", doc)


def test_schema_needs_one_decision_field() -> None:
    doc = orjson.loads((SCHEMA_DIR / "examples" / "dsa_statement.v1.json").read_bytes())
    for key in ("decision_visibility", "decision_visibility_other"):
        doc["statement"].pop(key, None)
    with pytest.raises(SchemaError):
        codec.validate("dsa_statement.v1", doc)


def test_a_strikes_suspension_says_so() -> None:
    doc = render_statement(action_doc("suspend_user", rule="strikes"), POLICY)
    assert doc is not None
    assert "strike threshold" in doc["statement"]["decision_facts"]
    assert doc["statement"]["decision_account"] == "DECISION_ACCOUNT_SUSPENDED"
