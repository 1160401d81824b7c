"""JSON Schemas (draft 2020-12) of every message on every streamwarden topic.

The ``*.vN.json`` files in this folder are the single source of truth; ``examples/`` holds
one valid document per schema (the tests validate them).
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_NAMES = (
    "segment.v1",
    "chat.v1",
    "result.v1",
    "action.v1",
    "review_task.v1",
    "dead_letter.v1",
    "control.v1",
    "review_verdict.v1",
    "dsa_statement.v1",
    "policy.v1",
)
__all__ = ["SCHEMA_DIR", "SCHEMA_NAMES"]
