"""Policy files: the shipped one loads; every problem is reported with its line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import typer
import yaml
from typer.testing import CliRunner

from pipeline import codec
from pipeline.cli_policy import policy_app
from pipeline.policy import PolicyError, load_policy, parse_policy
from pipeline.policy.loader import default_policy_file
from schemas import SCHEMA_DIR
from tests.unit.policy_fixtures import POLICY_YAML

BASE = """\
schema: policy.v1
version: t-1
rules:
  nsfw-blur:
    kind: score
    category: nsfw
    input: segment
    act_at: 0.8
    review_at: 0.5
    ladder: video
    first_action: blur
    last_action: end_stream
"""


def issues(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    return [(i.line, i.path, i.message) for i in info.value.issues]


def test_the_shipped_policy_is_valid_and_matches_the_schema() -> None:
    policy = load_policy(default_policy_file())
    assert policy.version and policy.dsa.enabled
    assert {r.category for r in policy.rules} >= {"nsfw", "chat_toxicity", "spam", "ocr_text"}
    data = yaml.safe_load(default_policy_file().read_text())
    codec.validate("policy.v1", data)
    chat = policy.rule("chat-toxicity")
    assert chat.thresholds("ru").act_at > chat.thresholds("en").act_at
    assert (chat.thresholds("ru").review_at or 0) > 0.57  # above neutral Russian lines


def test_the_schema_example_loads_as_a_policy() -> None:
    example = orjson.loads((SCHEMA_DIR / "examples" / "policy.v1.json").read_bytes())
    policy = parse_policy(orjson.dumps(example).decode())  # JSON is YAML
    assert policy.rule("chat-flood").shadow


@pytest.mark.parametrize(
    ("change", "line", "path", "needle"),
    [
        (("act_at: 0.8", "act_at: 1.5"), 8, "rules/nsfw-blur/act_at", "maximum"),
        (("version: t-1", "version: 2026.11"), 2, "version", "string"),
        (
            ("    ladder: video", "    ladder: video\n    windw: {n: 2, m: 3}"),
            11,
            "rules/nsfw-blur",
            "windw",
        ),
        (
            ("first_action: blur", "first_action: explode"),
            11,
            "rules/nsfw-blur/first_action",
            "explode",
        ),
        (("    kind: score\n", ""), 4, "rules/nsfw-blur", "kind"),
        (("review_at: 0.5", "review_at: 0.9"), 9, "rules/nsfw-blur/review_at", "below act_at"),
        (
            ("first_action: blur", "first_action: suspend_user"),
            11,
            "rules/nsfw-blur/first_action",
            "after last_action",
        ),
        (
            ("last_action: end_stream", "last_action: timeout_user"),
            12,
            "rules/nsfw-blur/last_action",
            "not on the video",
        ),
        (("input: segment", "input: chat"), 10, "rules/nsfw-blur/ladder", "chat"),
    ],
)
def test_errors_name_the_line(change: tuple[str, str], line: int, path: str, needle: str) -> None:
    found = issues(BASE.replace(*change))
    assert any(ln == line and p == path and needle in msg for ln, p, msg in found), found


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = BASE.replace("act_at: 0.8", "act_at: 2").replace("ladder: video", "ladder: tv")
    assert sorted({ln for ln, _, _ in issues(text)}) == [8, 10]


def test_regional_override_problems_name_the_override_line() -> None:
    text = BASE + (
        "regions:\n  DE:\n    rules:\n"
        "      nsfw-blur: {review_at: 0.95}\n"
        "      nope: {act_at: 0.1}\n"
    )
    found = issues(text)
    assert (17, "regions/DE/rules/nope", "no rule named 'nope'") in found
    assert any(ln == 16 and "review_at" in p and "override" in m for ln, p, m in found)


def test_duplicate_keys_are_errors() -> None:
    found = issues(BASE + "  nsfw-blur:\n    kind: score\n")
    assert (13, "rules/nsfw-blur", "duplicate key") in found


def test_yaml_syntax_errors_name_the_line() -> None:
    found = issues("schema: policy.v1\nversion: x\nrules: {a: [1, 2}\n")
    assert found[0][0] == 3 and "YAML" in found[0][2]


def test_norway_is_a_territory_not_false() -> None:
    text = BASE + "regions:\n  NO:\n    rules:\n      nsfw-blur: {act_at: 0.7}\n"
    assert parse_policy(text).rules_for("segment", "NO")[0].act_at == 0.7


def test_dsa_mapping_must_cover_every_live_category() -> None:
    text = BASE + (
        "dsa:\n  enabled: true\n  categories:\n    graphic: {statement_category: "
        "STATEMENT_CATEGORY_VIOLENCE, ground: incompatible, reference: x, explanation: y}\n"
    )
    assert any("dsa.categories has no 'nsfw'" in m for _, _, m in issues(text))


def test_unknown_dsa_category_enum_is_refused() -> None:
    text = BASE + (
        "dsa:\n  categories:\n    nsfw: {statement_category: STATEMENT_CATEGORY_PORN, "
        "ground: incompatible, reference: x, explanation: y}\n"
    )
    assert any(p == "dsa/categories/nsfw/statement_category" for _, p, _ in issues(text))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_cli_check_ok_and_failing(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(POLICY_YAML)
    app = typer.Typer()
    app.add_typer(policy_app, name="policy")  # as pipeline.cli registers it
    runner = CliRunner()
    ok = runner.invoke(app, ["policy", "check", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "test-1" in ok.output and "shadow" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("act_at: 0.8", "act_at: 1.5"))
    failed = runner.invoke(app, ["policy", "check", str(bad)])
    assert failed.exit_code == 1
    assert f"{bad}:8: rules/nsfw-blur/act_at" in failed.output
