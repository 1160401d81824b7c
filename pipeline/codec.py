"""One codec for every producer and consumer: orjson + JSON Schema 2020-12 (jsonschema-rs)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema_rs
import orjson

from pipeline.errors import ConfigError, SchemaError
from schemas import SCHEMA_DIR, SCHEMA_NAMES

_BASE_URI = "https://streamwarden.dev/schemas/"


@cache
def _validators() -> dict[str, Any]:
    docs = {p.name: orjson.loads(p.read_bytes()) for p in SCHEMA_DIR.glob("*.json")}
    registry = jsonschema_rs.Registry([(_BASE_URI + name, doc) for name, doc in docs.items()])
    validators = {}
    for name in SCHEMA_NAMES:
        doc = docs.get(f"{name}.json")
        if doc is None:
            raise ConfigError(f"schema file {name}.json missing from {SCHEMA_DIR}")
        validators[name] = jsonschema_rs.validator_for(
            doc, registry=registry, validate_formats=True
        )
    return validators


def validate(schema: str, doc: Any) -> None:
    """Raise ``SchemaError`` naming the first violation's path."""
    try:
        validator = _validators()[schema]
    except KeyError:
        raise ConfigError(f"unknown schema {schema!r}") from None
    try:
        validator.validate(doc)
    except jsonschema_rs.ValidationError as exc:
        path = "/".join(str(p) for p in exc.instance_path) or "(root)"
        raise SchemaError(f"{schema}: at {path}: {exc.message}") from exc


def encode(schema: str, doc: dict[str, Any]) -> bytes:
    """Validate ``doc`` against ``schema`` and serialise it."""
    validate(schema, doc)
    return orjson.dumps(doc)


def decode(schema: str, data: bytes | str | None) -> dict[str, Any]:
    """Parse and validate; any failure is a ``SchemaError`` (a dead-letter reason)."""
    if not data:
        raise SchemaError(f"{schema}: empty document")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"{schema}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SchemaError(f"{schema}: expected a JSON object, got {type(doc).__name__}")
    validate(schema, doc)
    return doc
