"""Policy: scores + history + policy file in, decisions out. Pure code (no Kafka, no Faust).

load_policy(path) -> Policy                                  (policy.v1 YAML, lines in errors)
decide_segment(policy, VideoState|None, SegmentObservation)  -> (VideoState, Evaluation)
decide_chat(policy, ChatStreamState|None, ChatUserState|None, ChatObservation)
                                               -> (ChatStreamState, ChatUserState, Evaluation)
record_strike(policy, StrikeLedger, RuleOutcome, at_s=) -> (StrikeLedger, suspension|None)
inspect_text(text, detectors) -> TextFindings               (chat and OCR text alike)
"""

from pipeline.policy.chat_rules import ChatObservation, decide_chat
from pipeline.policy.loader import PolicyError, PolicyIssue, load_policy, parse_policy
from pipeline.policy.model import LADDERS, Policy, Region, RuleSpec
from pipeline.policy.outcome import (
    SEVERITY,
    Decision,
    Evaluation,
    RuleOutcome,
    action_id,
    result_id,
    review_id,
)
from pipeline.policy.review import (
    ChatContextLine,
    ReviewEvidence,
    Thumbnail,
    chat_window,
    make_thumbnail,
    make_verdict,
)
from pipeline.policy.state import (
    ChatStreamState,
    ChatUserState,
    VideoState,
    user_key,
)
from pipeline.policy.strikes import StrikeLedger, outcome_from_action, record_strike
from pipeline.policy.text import TextFindings, inspect_text
from pipeline.policy.video import FrameScores, SegmentObservation, decide_segment

__all__ = [
    "LADDERS",
    "SEVERITY",
    "ChatContextLine",
    "ChatObservation",
    "ChatStreamState",
    "ChatUserState",
    "Decision",
    "Evaluation",
    "FrameScores",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "Region",
    "ReviewEvidence",
    "RuleOutcome",
    "RuleSpec",
    "SegmentObservation",
    "StrikeLedger",
    "TextFindings",
    "Thumbnail",
    "VideoState",
    "action_id",
    "chat_window",
    "decide_chat",
    "decide_segment",
    "inspect_text",
    "load_policy",
    "make_thumbnail",
    "make_verdict",
    "outcome_from_action",
    "parse_policy",
    "record_strike",
    "result_id",
    "review_id",
    "user_key",
]
