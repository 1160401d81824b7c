"""``python -m pipeline.bench run --quick``: real broker, a real worker, the baseline, the isolated
costs; the JSON, PNG and Markdown come out with the documented shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pipeline.settings import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.models]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(320)  # a hang guard, not a speed check: shared CI hosts are slow
def test_quick_run_writes_results_with_ratios_and_latencies(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    env = os.environ | {"SW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    env.pop("SW_INFERENCE_BACKEND", None)
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.bench", "run", "--quick", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = orjson.loads((tmp_path / "e2e.json").read_bytes())
    assert (tmp_path / "e2e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "e2e.md").read_text()
    assert "streamwarden bench run" in md and "--quick" in doc["command"]
    phases = doc["case"]["phases"]
    seg, chat, rt = phases["backlog_segments"], phases["backlog_chat"], phases["realtime"]
    assert seg["complete"] and chat["complete"] and rt["complete"]
    assert seg["inputs"]["segments"] == seg["results"] and seg["frames_sampled"] >= seg["results"]
    assert seg["frames_per_s"] > 0 and seg["cpu_ms_per_frame"] > 0
    assert chat["chat_per_s"] > 0 and chat["cpu_ms_per_chat"] > 0
    for phase in (seg, chat, rt):
        assert phase["timestamp_types"] == ["LogAppendTime"]
    lat = rt["latency_segment"]
    assert lat["n"] == rt["inputs"]["segments"] and 0 < lat["p50_ms"] <= lat["p99_ms"]
    assert rt["latency_chat"]["n"] == rt["inputs"]["chat"]
    assert set(rt["lag"]) == {doc["case"]["topic_prefix"] + t for t in ("segments", "chat")}
    samples = doc["case"]["samples"]
    assert samples and all(s["worker_rss_bytes"][0] > 0 for s in samples)
    assert 0 < doc["efficiency"]["frames_per_s_of_bound"] < 2
    assert doc["isolated"]["inference_cpu_ms_per_frame"] > 0
    base = doc["case"]["baseline"]
    assert base["complete"] and base["segments"] == seg["inputs"]["segments"]
    assert base["frames_decoded"] > base["frames_inferred"] > 0  # every frame decoded
    assert doc["versus_baseline"]["streams_per_core_x"] > 0
    assert doc["machine"]["loadavg"] and doc["segments"]["pool_size"] >= 2
