"""The command line: registered commands, and a worker that refuses a bad policy file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.policy.loader import default_policy_file


def test_policy_kpi_and_scan_are_registered() -> None:
    names = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    names |= {g.name for g in app.registered_groups if g.name}
    assert {"worker", "topics", "policy", "kpi", "scan", "inspect", "bank"} <= names
    check = CliRunner().invoke(app, ["policy", "check", str(default_policy_file())])
    assert check.exit_code == 0, check.output
    assert "policy sw-2026.11.2" in check.output


def test_a_bad_policy_file_stops_the_worker_naming_each_line(tmp_path: Path) -> None:
    text = default_policy_file().read_text()
    bad = text.replace(
        "    act_at: 0.80\n    review_at: 0.50\n", "    act_at: 1.5\n    review_at: 0.50\n", 1
    )
    bad = bad.replace("first_action: age_restrict", "first_action: explode", 1)
    assert bad.count("1.5") >= 1 and "explode" in bad
    path = tmp_path / "policy.yaml"
    path.write_text(bad)
    env = os.environ | {
        "SW_POLICY_FILE": str(path),
        "SW_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: the policy is read first
    }
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    lines = text.splitlines()
    act_line = next(i for i, ln in enumerate(lines, 1) if ln.strip() == "act_at: 0.80")
    region_line = next(i for i, ln in enumerate(lines, 1) if "first_action: age_restrict" in ln)
    err = " ".join(run.stderr.split())  # rich may wrap
    assert f"{path}:{act_line}: rules/nsfw-blur/act_at:" in err
    assert f"{path}:{region_line}: regions/DE/rules/nsfw-blur" in err
    assert "cannot reach Kafka" not in err
