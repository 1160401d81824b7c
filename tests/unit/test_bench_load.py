"""pipeline.bench.load and .knobs: the load schedule, the segment pool cache, sweep knobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bench.knobs import KNOBS, parse_values
from pipeline.bench.load import Load, SegmentPool, SegmentSpec, phase_of, schedule


def test_realtime_schedule_staggers_streams_and_waits_for_whole_segments() -> None:
    load = Load("rt-4", streams=4, segments_per_stream=3, chat_per_stream=5, realtime=True)
    events = schedule(load)
    assert len(events) == load.segments + load.chat == 12 + 20
    assert events == sorted(events)
    segs = {(e.stream, e.n): e.at_s for e in events if e.kind == "segment"}
    # stream s starts s/4 of a 2 s segment late; segment q exists once its last frame is in
    assert segs[(0, 0)] == 2.0 and segs[(1, 0)] == 2.5 and segs[(3, 2)] == 1.5 + 6.0
    chats = [e for e in events if e.kind == "chat"]
    assert all(0 <= e.at_s <= load.duration_s for e in chats)
    assert schedule(load) == events  # seeded: the same run twice


def test_backlog_schedule_is_all_at_once() -> None:
    load = Load("bl-seg", streams=3, segments_per_stream=2, chat_per_stream=1, realtime=False)
    events = schedule(load)
    assert {e.at_s for e in events} == {0.0}
    assert sum(e.kind == "segment" for e in events) == 6


def test_stream_ids_carry_their_phase() -> None:
    load = Load("rt-12", 12, 1, 0, True)
    assert load.stream_id(7) == "rt-12:0007"
    assert phase_of(load.stream_id(7)) == "rt-12"
    assert phase_of("no-phase") == ""


def test_segment_pool_encodes_once_and_streams_never_repeat_back_to_back(tmp_path: Path) -> None:
    spec = SegmentSpec(width=64, height=36, fps=10, bitrate_bps=50_000, segment_ms=400, gop_s=0.4)
    pool = SegmentPool(spec, tmp_path, size=3)
    assert pool.encoded_now == 3 and len(set(pool.segments)) == 3
    again = SegmentPool(spec, tmp_path, size=3)
    assert again.encoded_now == 0 and again.segments == pool.segments
    for stream in range(4):
        for seq in range(5):
            assert pool.segment(stream, seq) != pool.segment(stream, seq + 1)
    assert pool.mean_bitrate_bps > 0
    assert spec.label == "36p10 0.05 Mbit/s"
    with pytest.raises(ValueError):
        SegmentPool(spec, tmp_path, size=1)


def test_knobs_map_values_to_worker_settings() -> None:
    assert KNOBS["batch-max"].env("32") == {"SW_SEGMENT_BATCH_MAX": "32"}
    assert KNOBS["batch-wait-ms"].env("50") == {"SW_SEGMENT_BATCH_WAIT_MS": "50"}
    assert KNOBS["sampling"].env("fps:2") == {"SW_SAMPLING": "fps", "SW_SAMPLE_FPS": "2.0"}
    assert KNOBS["sampling"].env("keyframes") == {"SW_SAMPLING": "keyframes"}
    assert KNOBS["shm"].env("on") == {
        "SW_INFERENCE_BACKEND": "triton",
        "SW_TRITON_SHARED_MEMORY": "true",
    }
    assert KNOBS["workers"].case("2") == {"workers": 2} and KNOBS["workers"].env("2") == {}
    assert KNOBS["streams"].case("16") == {"streams": 16}
    assert KNOBS["onnx-threads"].env("1") == {"SW_ONNX_THREADS": "1"}
    assert KNOBS["ocr-every"].env("3") == {"SW_OCR_EVERY_NTH_SEGMENT": "3"}
    assert KNOBS["frame-batch-max"].env("4") == {"SW_FRAME_BATCH_MAX": "4"}


def test_parse_values_checks_every_value() -> None:
    assert parse_values(KNOBS["batch-max"], "1, 8,32", quick=False) == ["1", "8", "32"]
    assert parse_values(KNOBS["backend"], None, quick=False) == ["onnx", "triton"]
    assert len(parse_values(KNOBS["streams"], None, quick=True)) == 2
    for knob, bad in (("sampling", "every"), ("backend", "tensorrt"), ("workers", "0")):
        with pytest.raises(ValueError):
            parse_values(KNOBS[knob], bad, quick=False)
    with pytest.raises(ValueError):
        parse_values(KNOBS["batch-max"], " , ", quick=False)
