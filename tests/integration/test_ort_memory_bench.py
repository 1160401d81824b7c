"""The ONNX Runtime memory benchmark runs (quick mode) and writes its JSON and plot."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from benchmarks.ort_memory_bench import MODES, QUICK_BATCHES, main

pytestmark = pytest.mark.models


@pytest.mark.timeout(300)  # a hang guard: three processes, each loading the models
def test_quick_run_writes_results(tmp_path: Path) -> None:
    assert main(["--quick", "--out-dir", str(tmp_path)]) == 0
    doc = orjson.loads((tmp_path / "ort_memory.json").read_bytes())
    assert doc["schema"] == "ort-memory-bench.v1" and doc["batches"] == list(QUICK_BATCHES)
    assert [r["mode"] for r in doc["rows"]] == list(MODES)
    for row in doc["rows"]:
        assert 0 < row["rss_before_mb"] <= row["rss_peak_mb"]
        assert row["det_ms_per_frame"] > 0 and row["cls_batch16_ms_after"] > 0
    assert (tmp_path / "ort_memory.png").stat().st_size > 10_000
