"""benchmarks/decode_bench.py --quick: it runs, and its JSON has the documented shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ["keyframes", "fps=1", "fps=5", "scene", "every frame"]


def test_quick_benchmark_writes_json_and_plot(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "decode_bench.py"
    run = subprocess.run(
        [sys.executable, str(script), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    doc = orjson.loads((tmp_path / "decode.json").read_bytes())
    assert (tmp_path / "decode.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["schema"] == "decode-bench.v1" and doc["quick"] is True
    labels = [i["label"] for i in doc["inputs"]]
    assert len(labels) == 2
    assert {(f["input"], f["floor"]) for f in doc["floors"]} == {
        (label, floor) for label in labels for floor in ("full_decode", "keyframes_decode")
    }
    assert [(r["input"], r["strategy"]) for r in doc["results"]] == [
        (label, s) for label in labels for s in STRATEGIES
    ]
    for r in doc["results"]:
        assert r["sampled_frames"] >= 1 and r["cpu_ms"] > 0
        for key in ("sampled_frames_per_s", "cpu_ms_per_sampled_frame", "cpu_ms_per_video_s"):
            assert r[key] > 0
        assert r["overhead_vs_floor"] > 0
    keyframes = {r["input"]: r for r in doc["results"] if r["strategy"] == "keyframes"}
    for label in labels:
        summary = doc["summary"][label]
        assert summary["keyframes_cheaper_than_full_decode_x"] > 1
        assert set(summary["overhead_vs_floor"]) == set(STRATEGIES)
        assert keyframes[label]["decoded_frames"] == 1  # 2 s segment, 2 s GOP
    assert "ms/video-s" in run.stdout
