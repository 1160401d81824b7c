"""Load a policy file: YAML -> JSON Schema (policy.v1) -> consistency checks -> ``Policy``.

Every problem is reported with the line it is on: a JSON Schema error's instance path is
walked down the composed YAML node tree (``yaml.compose`` keeps each node's start mark).
All problems are collected, not just the first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml

from pipeline.errors import ConfigError
from pipeline.policy.model import (
    OVERRIDABLE,
    DsaCategory,
    DsaSettings,
    LanguageThresholds,
    Policy,
    Region,
    RuleSpec,
    StrikePolicy,
)
from schemas import SCHEMA_DIR

_BASE_URI = "https://streamwarden.dev/schemas/"
_DEFAULT_FILE = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


@dataclass(frozen=True)
class PolicyIssue:
    line: int | None  # 1-based
    path: str  # JSON-pointer-like location, e.g. rules/nsfw-blur/act_at
    message: str

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.path or '(root)'}: {self.message}"


class PolicyError(ConfigError):
    """The policy file is unreadable or invalid; ``issues`` names each problem's line."""

    def __init__(self, source: str, issues: Sequence[PolicyIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        super().__init__("\n".join(i.render(source) for i in self.issues))


def default_policy_file() -> Path:
    return _DEFAULT_FILE


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises ``PolicyError`` listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(p), [PolicyIssue(None, "", f"cannot read: {exc}")]) from exc
    return parse_policy(text, source=str(p))


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(source, [PolicyIssue(line, "", f"YAML: {exc.problem}")]) from exc
    if root is None:
        raise PolicyError(source, [PolicyIssue(1, "", "the file is empty")])
    issues = list(_duplicate_keys(root, ""))
    data = _to_data(root)
    issues += [_issue(root, err) for err in _validator().iter_errors(data)]
    if issues:
        raise PolicyError(source, sorted(issues, key=lambda i: (i.line or 0, i.path)))
    policy, problems = _build(data)
    if problems:
        found = [
            PolicyIssue(_line(root, path), "/".join(map(str, path)), msg) for path, msg in problems
        ]
        raise PolicyError(source, sorted(found, key=lambda i: (i.line or 0, i.path)))
    return policy


@cache
def _validator() -> Any:
    docs = [orjson.loads(f.read_bytes()) for f in sorted(SCHEMA_DIR.glob("*.json"))]
    registry = jsonschema_rs.Registry([(d["$id"], d) for d in docs if "$id" in d])
    schema = orjson.loads((SCHEMA_DIR / "policy.v1.json").read_bytes())
    return jsonschema_rs.validator_for(schema, registry=registry, validate_formats=True)


def _to_data(node: yaml.Node) -> Any:
    """Plain data with every mapping key as its source text (so ``NO:`` stays Norway)."""
    if isinstance(node, yaml.MappingNode):
        return {_key_text(k): _to_data(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(v) for v in node.value]
    value = yaml.SafeLoader("").construct_object(node, deep=True)
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.tag}>"


def _duplicate_keys(node: yaml.Node, path: str) -> Iterator[PolicyIssue]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = _key_text(k)
            here = f"{path}/{key}" if path else key
            if key in seen:
                yield PolicyIssue(k.start_mark.line + 1, here, "duplicate key")
            seen.add(key)
            yield from _duplicate_keys(v, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            yield from _duplicate_keys(v, f"{path}/{i}")


def _node_at(root: yaml.Node, path: Sequence[str | int]) -> tuple[yaml.Node, yaml.Node | None]:
    """The deepest node on ``path`` and, when the last step was a mapping key, its key node."""
    node, key_node = root, None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            # the last of duplicate keys wins, as in the loaded data
            hit = next((kv for kv in reversed(node.value) if _key_text(kv[0]) == str(part)), None)
            if hit is None:
                break
            key_node, node = hit
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            key_node, node = None, node.value[part]
        else:
            break
    return node, key_node


def _line(root: yaml.Node, path: Sequence[str | int]) -> int:
    node, key_node = _node_at(root, path)
    return (key_node or node).start_mark.line + 1


def _issue(root: yaml.Node, err: Any) -> PolicyIssue:
    path = list(err.instance_path)
    line = _line(root, path)
    unexpected = getattr(err.kind, "unexpected", None)
    if unexpected:  # additionalProperties: point at the first offending key itself
        line = _line(root, [*path, unexpected[0]])
    return PolicyIssue(line, "/".join(str(p) for p in path), err.message)


def _rule_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """YAML rule (or override) keys -> ``RuleSpec`` field values."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "description":
            continue
        if key == "mode":
            out["shadow"] = value == "shadow"
        elif key == "window":
            out["window_n"], out["window_m"] = value["n"], value["m"]
            if "unit" in value:
                out["window_unit"] = value["unit"]
        elif key == "languages":
            out["languages"] = {
                lang: LanguageThresholds(t["act_at"], t.get("review_at"))
                for lang, t in value.items()
            }
        elif key in ("detectors", "allow_domains"):
            out[key] = tuple(value)
        else:
            out[key] = value
    return out


def _build(data: Mapping[str, Any]) -> tuple[Policy, list[tuple[list[str | int], str]]]:
    problems: list[tuple[list[str | int], str]] = []
    rules = []
    for name, raw in data["rules"].items():
        rule = RuleSpec(name=name, **_rule_fields(raw))
        problems += [(["rules", name, *key.split("/")], msg) for key, msg in rule.problems()]
        rules.append(rule)
    by_name = {r.name: r for r in rules}
    regions = {}
    for code, raw in data.get("regions", {}).items():
        overrides = {}
        for name, change in raw.get("rules", {}).items():
            where: list[str | int] = ["regions", code, "rules", name]
            if name not in by_name:
                problems.append((where, f"no rule named {name!r}"))
                continue
            fields_ = {k: v for k, v in _rule_fields(change).items() if k in OVERRIDABLE}
            base = set(by_name[name].problems())
            for key, msg in by_name[name].overridden(fields_).problems():
                if (key, msg) not in base:
                    problems.append(([*where, *key.split("/")], f"with this override: {msg}"))
            overrides[name] = fields_
        regions[code] = Region(code, overrides, bool(raw.get("geo_scoped", False)))
    dsa_raw = data.get("dsa", {})
    dsa = DsaSettings(
        enabled=bool(dsa_raw.get("enabled", False)),
        categories={
            cat: DsaCategory(
                statement_category=c["statement_category"],
                ground=c["ground"],
                reference=c["reference"],
                explanation=c["explanation"],
                keywords=tuple(c.get("keywords", ())),
                reference_url=c.get("reference_url"),
            )
            for cat, c in dsa_raw.get("categories", {}).items()
        },
    )
    if dsa.enabled:
        for r in rules:
            if not r.shadow and r.category not in dsa.categories:
                problems.append(
                    (["rules", r.name, "category"], f"dsa.categories has no {r.category!r}")
                )
    esc = data.get("escalation", {})
    durations = data.get("durations", {})
    policy = Policy(
        version=data["version"],
        rules=tuple(rules),
        regions=regions,
        escalation_window_s=float(esc.get("window_s", 1800.0)),
        strikes=StrikePolicy(**data.get("strikes", {})),
        timeout_user_s=float(durations.get("timeout_user_s", 600.0)),
        suspend_user_s=float(durations.get("suspend_user_s", 0.0)),
        dsa=dsa,
    )
    return policy, problems
