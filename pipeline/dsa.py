"""EU DSA statements of reasons for enforcement actions. Pure code.

``render_statement`` turns a published ``action.v1`` document into a ``dsa_statement.v1``
document whose ``statement`` is the request body of the DSA Transparency Database API
(schema v2): what was restricted (``decision_visibility`` / ``decision_provision`` /
``decision_account``), on which ground (illegal content, or incompatible with the terms and
conditions, from the policy's ``dsa.categories``), the facts, how automated it was, where it
applies and when. No personal data goes in: no user, stream or message ids, no chat text.

How streamwarden actions map (one statement per action):

    warn            visibility CONTENT_LABELLED       (a warning is shown with the stream)
    blur            visibility OTHER                  ("live video blurred for viewers")
    age_restrict    visibility CONTENT_AGE_RESTRICTED
    end_stream      visibility CONTENT_DISABLED       (the live stream is ended)
    delete_message  visibility CONTENT_REMOVED
    timeout_user    visibility CONTENT_REMOVED + provision PARTIAL_SUSPENSION (chat, until end)
    suspend_user    visibility CONTENT_DISABLED/REMOVED + account SUSPENDED (until end, if set)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from pipeline import codec
from pipeline.errors import ConfigError
from pipeline.policy.model import LADDERS, Policy
from pipeline.policy.strikes import STRIKES_RULE
from pipeline.records import deterministic_id, parse_iso, utc_now_iso

EU = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip
EEA = tuple(sorted((*EU, "IS", "LI", "NO")))
AutomatedDecision = Literal[
    "AUTOMATED_DECISION_FULLY", "AUTOMATED_DECISION_PARTIALLY", "AUTOMATED_DECISION_NOT_AUTOMATED"
]
_BLURRED = "Live video blurred for viewers while the violation lasts"
_WHAT = {"segment": "a live video stream", "chat": "a live stream's chat message"}
_SCORED = {
    "nsfw": "the nudity/sexual content classifier",
    "graphic": "the graphic violence classifier",
    "ocr_text": "text recognition and the solicitation rules",
    "chat_toxicity": "the chat toxicity classifier",
    "hash_match": "hash matching against a bank of known content",
    "spam": "the chat spam rules",
}


def _day(ts: str) -> str:
    return parse_iso(ts).date().isoformat()


def _until(start: str, seconds: float) -> str:
    return (parse_iso(start) + timedelta(seconds=seconds)).date().isoformat()


def _content_time(action: Mapping[str, Any]) -> str:
    """When the content was posted: the frame's time, the record's time, else the decision's."""
    times = [e["frame_time"] for e in action.get("evidence", []) if "frame_time" in e]
    return min(times, default=action["input"].get("produced_at", action["decided_at"]))


def _decision(action: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    kind = action["input"]["kind"]
    act = action["action"]
    gone = "DECISION_VISIBILITY_CONTENT_REMOVED" if kind == "chat" else None
    out: dict[str, Any] = {}
    if act == "warn":
        out["decision_visibility"] = ["DECISION_VISIBILITY_CONTENT_LABELLED"]
    elif act == "blur":
        out["decision_visibility"] = ["DECISION_VISIBILITY_OTHER"]
        out["decision_visibility_other"] = _BLURRED
    elif act == "age_restrict":
        out["decision_visibility"] = ["DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED"]
    elif act in ("end_stream", "delete_message"):
        out["decision_visibility"] = [gone or "DECISION_VISIBILITY_CONTENT_DISABLED"]
    elif act == "timeout_user":
        out["decision_visibility"] = [gone or "DECISION_VISIBILITY_CONTENT_DISABLED"]
        out["decision_provision"] = "DECISION_PROVISION_PARTIAL_SUSPENSION"
        out["end_date_service_restriction"] = _until(action["decided_at"], policy.timeout_user_s)
    elif act == "suspend_user":
        out["decision_visibility"] = [gone or "DECISION_VISIBILITY_CONTENT_DISABLED"]
        out["decision_account"] = "DECISION_ACCOUNT_SUSPENDED"
        if policy.suspend_user_s > 0:
            out["end_date_account_restriction"] = _until(
                action["decided_at"], policy.suspend_user_s
            )
    else:
        raise ValueError(f"no DSA mapping for action {act!r}")
    return out


def _facts(action: Mapping[str, Any], policy: Policy, automated: AutomatedDecision) -> str:
    kind = action["input"]["kind"]
    category = action["category"]
    score = action["scores"].get(category)
    rule_name = action["rule"]
    parts = [f"Automated detection on {_WHAT.get(kind, 'content')}."]
    how = _SCORED.get(category, f"the {category} classifier")
    scored = f" scored {score:.2f}" if score is not None and category != "spam" else " matched"
    rule = None
    if action["policy_version"] == policy.version:  # describe the rule as it was applied
        try:
            rule = policy.rule(rule_name)
        except KeyError:
            rule = None
    if rule_name == STRIKES_RULE:
        parts.append(
            "The account reached the strike threshold of the policy after repeated violations "
            f"within {policy.strikes.window_s / 86400:g} days; this latest one was detected by "
            f"{how}."
        )
    elif rule is not None and rule.kind in ("score", "text"):
        when = f"at or above {rule.act_at:.2f}"
        if rule.input != "chat" and rule.window_m > 1:
            unit = "sampled frames" if rule.window_unit == "frames" else "segments"
            when += f" on {rule.window_n} of the last {rule.window_m} {unit}"
        parts.append(f"{how[0].upper()}{how[1:]}{scored}; the rule acts {when}.")
    elif rule is not None:
        parts.append(f"The {rule.kind} rule matched ({how}).")
    else:
        parts.append(f"{how[0].upper()}{how[1:]}{scored}.")
    ladder = LADDERS["chat" if kind == "chat" else "video"]
    rung = ""
    if action["action"] in ladder:
        step = ladder.index(action["action"]) + 1
        rung = f" (rung {step} of {len(ladder)} of the escalation ladder)"
    parts.append(
        f"Rule {rule_name} of moderation policy {action['policy_version']} took the action "
        f"{action['action'].replace('_', ' ')}{rung}."
    )
    if automated != "AUTOMATED_DECISION_FULLY":
        parts.append("A human reviewer confirmed the decision.")
    return " ".join(parts)


def render_statement(
    action: Mapping[str, Any],
    policy: Policy,
    *,
    automated_decision: AutomatedDecision = "AUTOMATED_DECISION_FULLY",
    territory: str | None = None,
    geo_scoped: bool = False,
    content_language: str | None = None,
    created_at: str | None = None,
) -> dict[str, Any] | None:
    """The validated ``dsa_statement.v1`` for one action, or None when it is outside the DSA
    (an action scoped to viewers of a territory outside the EU/EEA).

    ``geo_scoped``/``territory``: the outcome's; the statement then covers that country only.
    ``automated_decision``: PARTIALLY when a reviewer confirmed an automated proposal.
    """
    if geo_scoped and territory:
        if territory not in EEA:
            return None
        scope = [territory]
    else:
        scope = list(EEA)
    mapping = policy.dsa.categories.get(action["category"])
    if mapping is None:
        raise ConfigError(f"policy {policy.version}: dsa.categories has no {action['category']!r}")
    statement: dict[str, Any] = _decision(action, policy)
    if mapping.ground == "illegal":
        statement["decision_ground"] = "DECISION_GROUND_ILLEGAL_CONTENT"
        statement["illegal_content_legal_ground"] = mapping.reference
        statement["illegal_content_explanation"] = mapping.explanation
    else:
        statement["decision_ground"] = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
        statement["incompatible_content_ground"] = mapping.reference
        statement["incompatible_content_explanation"] = mapping.explanation
    if mapping.reference_url:
        statement["decision_ground_reference_url"] = mapping.reference_url
    statement["category"] = mapping.statement_category
    if mapping.keywords:
        statement["category_specification"] = list(mapping.keywords)
    kind = action["input"]["kind"]
    statement["content_type"] = ["CONTENT_TYPE_TEXT" if kind == "chat" else "CONTENT_TYPE_VIDEO"]
    if content_language:
        statement["content_language"] = content_language.upper()[:2]
    statement["territorial_scope"] = scope
    statement["content_date"] = _day(_content_time(action))
    statement["application_date"] = _day(action["decided_at"])
    statement["decision_facts"] = _facts(action, policy, automated_decision)[:5000]
    statement["source_type"] = "SOURCE_VOLUNTARY"
    statement["automated_detection"] = "Yes"
    statement["automated_decision"] = automated_decision
    statement["puid"] = action["id"]
    doc = {
        "schema": "dsa_statement.v1",
        "id": deterministic_id("dsa_statement", action["id"]),
        "action_id": action["id"],
        "policy_version": action["policy_version"],
        "created_at": created_at or utc_now_iso(),
        "statement": statement,
    }
    codec.validate("dsa_statement.v1", doc)
    return doc
