"""Markdown summaries (and the PNGs, via :mod:`pipeline.bench.plots`) of benchmark documents;
``summarize`` folds every result in a folder into one ``summary.md``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

from pipeline.bench import plots

__all__ = ["markdown", "summarize", "write"]


def write(doc: dict[str, Any], stem: Path) -> None:
    """``<stem>.png`` and ``<stem>.md`` for one document."""
    kind = doc["schema"]
    if kind == "sw-bench-e2e.v1":
        plots.plot_e2e(doc, stem.with_suffix(".png"))
    elif kind == "sw-bench-capacity.v1":
        plots.plot_capacity(doc, stem.with_suffix(".png"))
    else:
        plots.plot_sweep(doc, stem.with_suffix(".png"))
    stem.with_suffix(".md").write_text(markdown(doc, stem.name))


def _f(x: Any, digits: int = 1, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}{unit}" if isinstance(x, float | int) else str(x)


def _lat(d: dict[str, Any]) -> str:
    if not d.get("n"):
        return "–"
    return f"{d['p50_ms'] / 1000:.2f} / {d['p95_ms'] / 1000:.2f} / {d['p99_ms'] / 1000:.2f}"


def _preamble(doc: dict[str, Any], title: str, stem: str) -> list[str]:
    m, seg = doc["machine"], doc["segments"]
    load = f"{m['loadavg'][0]} at the start, {m.get('loadavg_end', ['?'])[0]} at the end"
    return [
        f"# {title}",
        "",
        f"Measured on this machine ({m['cpus']} CPUs, {m['platform']}, Python {m['python']}), "
        f"a shared host: 1-min load average {load}. Figures from other machines will differ.",
        "",
        f"Reproduce: `{doc['command']}` (writes `{stem}.json`, `{stem}.png`, `{stem}.md`).",
        "",
        f"Input: {seg['label']} (measured {seg['mean_bitrate_bps'] / 1e6:.2f} Mbit/s), "
        f"{seg['codec']}, {seg['spec']['segment_ms'] / 1000:g} s segments, "
        f"{seg['spec']['gop_s']:g} s GOP; {seg['note']}.",
        "",
        f"Latency: {doc['timestamps']}.",
        "",
    ]


def _phase_rows(phases: dict[str, Any]) -> list[str]:
    out = [
        "| phase | inputs | throughput | CPU per item | latency p50 / p95 / p99 (s) | complete |",
        "|---|---|---|---|---|---|",
    ]
    bl = phases.get("backlog_segments")
    if bl:
        out.append(
            f"| segment backlog | {bl['inputs']['segments']} segments | "
            f"{_f(bl['segments_per_s'], 2)} segments/s, {_f(bl['frames_per_s'], 2)} frames/s | "
            f"{_f(bl['cpu_ms_per_frame'])} ms/frame | {_lat(bl['latency_segment'])} | "
            f"{bl['complete']} |"
        )
    ch = phases.get("backlog_chat")
    if ch:
        out.append(
            f"| chat backlog | {ch['inputs']['chat']} lines | {_f(ch['chat_per_s'])} lines/s | "
            f"{_f(ch['cpu_ms_per_chat'], 2)} ms/line | {_lat(ch['latency_chat'])} | "
            f"{ch['complete']} |"
        )
    rt = phases.get("realtime")
    if rt:
        lag = "; ".join(
            f"{t.rsplit('.', 1)[-1]} lag slope {v['slope_records_per_s']:+.2f}/s"
            for t, v in rt["lag"].items()
        )
        out.append(
            f"| real time, {rt['streams']} streams × {rt['duration_s']:g} s | "
            f"{rt['inputs']['segments']} segments, {rt['inputs']['chat']} lines | "
            f"{_f(rt['segments_per_s'], 2)} segments/s, {_f(rt['chat_per_s'], 2)} lines/s "
            f"(offered {rt['offered']['segments_per_s']:g}, {rt['offered']['chat_per_s']:g}) | "
            f"{_f(rt['cores_used'], 2)} cores; {lag} | segments {_lat(rt['latency_segment'])}, "
            f"chat {_lat(rt['latency_chat'])} | {rt['complete']} |"
        )
    return out


def _e2e(doc: dict[str, Any], stem: str) -> list[str]:
    out = _preamble(doc, "streamwarden end to end (this machine)", stem)
    case, phases = doc["case"], doc["case"]["phases"]
    vs, eff = doc.get("versus_baseline", {}), doc.get("efficiency", {})
    out += ["## Ratios", "", "| ratio | value |", "|---|---|"]
    if vs:
        spc, x = vs["streams_per_core"], _f(vs["streams_per_core_x"], 2)
        out.append(
            f"| streams per core, streamwarden / plain loop | **{x}×** "
            f"({_f(spc['streamwarden'])} vs {_f(spc['baseline'])}) |"
        )
        out.append(
            f"| sampled frames per CPU-second, / plain loop | {_f(vs['frames_per_cpu_s_x'], 2)}× |"
        )
        out.append(
            f"| chat lines per CPU-second, / plain loop | {_f(vs['chat_per_cpu_s_x'], 2)}× |"
        )
    if eff:
        out.append(
            f"| end-to-end frames/s as a share of the isolated bound | "
            f"**{_f(eff['frames_per_s_of_bound'], 3)}** |"
        )
        iso_share, chat_share = eff["cpu_per_frame_isolated_of_e2e"], eff["chat_per_s_of_bound"]
        out.append(f"| isolated CPU per frame / end-to-end CPU per frame | {_f(iso_share, 3)} |")
        out.append(f"| chat lines/s as a share of the isolated bound | {_f(chat_share, 3)} |")
    out += ["", f"Workers: {case['config']['workers']}, input partitions {case['partitions']}, "
            f"backend {case['config']['backend']}, settings {case['config']['env'] or 'defaults'}; "
            f"worker start-up {case.get('startup_s')} s, warm-up {case.get('warm_up_s')} s "
            f"(not measured). Other sessions on the host took up to "
            f"{case.get('contention_cores', 0):.2f} cores during a phase "
            f"(attempt {case.get('attempts', 1)}; a contended run is repeated once).",
            "", "## Phases", ""]  # fmt: skip
    out += _phase_rows(phases)
    out += [
        "",
        "CPU by process during each phase; `others` is host CPU none of ours used (other "
        "sessions on this shared machine), which the worker competed with:",
    ]
    for name, ph in phases.items():
        if "cores_used_by" in ph:
            split = ", ".join(f"{k} {v:.2f}" for k, v in ph["cores_used_by"].items())
            out.append(f"- {name}: cores used, {split}")
        else:
            keys = (
                "worker_cpu_s",
                "server_cpu_s",
                "broker_cpu_s",
                "harness_cpu_s",
                "others_cpu_s",
            )
            split = ", ".join(f"{k.removesuffix('_cpu_s')} {ph.get(k, 0):.2f} s" for k in keys)
            out.append(f"- {name} ({ph['wall_s']:.1f} s): {split}")
    if "isolated" in doc:
        iso, b = doc["isolated"], doc["bound"]
        out += [
            "", "## Isolated costs and the bound", "",
            f"Same segments, no Kafka or Faust, CPU of one process (all threads): media stage "
            f"(decode + sample + PDQ) {iso['media_cpu_ms_per_segment']} ms per segment; "
            f"preprocessing {iso['preprocess_cpu_ms_per_frame']} ms and inference "
            f"({', '.join(m for m in iso['models'] if m != 'ocr')}, batches of "
            f"{iso['frame_batch']}) {iso['inference_cpu_ms_per_frame']} ms per sampled frame "
            f"({iso['frames_per_segment']} per segment); OCR "
            f"{iso.get('ocr_cpu_ms_per_read_frame', 0)} ms per frame read "
            f"({iso.get('ocr_frames_per_segment', 0)} per segment); "
            f"{iso.get('cpu_ms_per_segment', '–')} ms per segment in all; chat "
            f"{iso['chat_cpu_ms_per_message']} ms per line (batches of {iso['chat_batch']}). "
            f"With {b['cores']} cores: at most {b['frames_per_s']} frames/s "
            f"({b['segments_per_s']} segments/s) and {b['chat_per_s']} lines/s.",
        ]  # fmt: skip
    if "baseline" in case:
        bl = case["baseline"]
        out += [
            "", "## Plain loop (baseline)", "",
            f"Same backlog records, one message at a time (every frame decoded, batch-1 "
            f"inference, synchronous commit per message): {bl['segments']} segments "
            f"({bl['frames_decoded']} frames decoded, {bl['frames_inferred']} inferred, "
            f"{bl.get('frames_ocr', 0)} read by OCR), "
            f"{bl['chat']} lines; {_f(bl.get('cpu_ms_per_segment'))} CPU ms per segment, "
            f"{_f(bl.get('cpu_ms_per_frame'))} per inferred frame, "
            f"{_f(bl.get('cpu_ms_per_chat'), 2)} per line; {_f(bl.get('segments_per_s'), 2)} "
            f"segments/s, {_f(bl.get('chat_per_s'))} lines/s; sampling {bl['sampling']}.",
        ]  # fmt: skip
    wm = phases.get("backlog_segments", {}).get("worker_metrics")
    if wm:
        out += [
            "",
            "## The worker's own metrics (segment backlog)",
            "",
            f"`{orjson.dumps(wm).decode()}`",
        ]
    return out


def _capacity(doc: dict[str, Any], stem: str) -> list[str]:
    c = doc["criteria"]
    out = _preamble(doc, "streamwarden capacity (this machine)", stem)
    out += [
        f"**{doc['capacity_streams']} real-time streams** on {c['workers']} worker(s) "
        f"({doc['streams_per_core']} per core), sampling {c['sampling']}, backend {c['backend']}, "
        f"{c['chat_per_min_per_stream']:g} chat lines/min per stream; "
        + (
            f"first failure at {doc['first_failure_streams']} streams."
            if doc["first_failure_streams"]
            else "no failure up to the largest count tried."
        ),
        "",
        f"A count passes when, over a {c['step_s']:g} s run: {c['complete']}; p99 latency of "
        f"segments and of chat <= {c['p99_bound_ms'] / 1000:g} s; lag: {c['lag']}.",
        "",
        _search_line(doc),
        "",
        "| streams | offered segments/s | achieved | segments p50 / p95 / p99 (s) | chat p99 (s) "
        "| lag slope segments, chat (/s) | worker cores | other sessions' cores | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in sorted(doc["trials"], key=lambda x: x["streams"]):
        rt = t["realtime"]
        slopes = ", ".join(f"{v['slope_records_per_s']:+.2f}" for v in rt["lag"].values())
        offered, achieved = rt["offered"]["segments_per_s"], _f(rt["segments_per_s"], 2)
        chat_p99 = _f(rt["latency_chat"].get("p99_ms", 0) / 1000, 2)
        out.append(
            f"| {t['streams']} | {offered:g} | {achieved} | {_lat(rt['latency_segment'])} "
            f"| {chat_p99} | {slopes} | {_f(rt['cores_used'], 2)} "
            f"| {_f(rt.get('cores_used_by', {}).get('others'), 2)} "
            f"| {'yes' if t['passed'] else 'no'} |"
        )
    return out


def _search_line(doc: dict[str, Any]) -> str:
    search, est = doc.get("search", {}), doc.get("estimate")
    line = f"Search: from {search.get('start')} streams"
    if est:
        line += (
            f" (estimated: a segment backlog ran at {est['backlog_segments_per_s']:g} segments/s "
            f"× segment length × {est['share']:g})"
        )
    return line + (
        f", growing by {search.get('growth')} per pass, then bisecting to within "
        f"{search.get('precision')}; runs in the order tried: "
        + ", ".join(f"{t['streams']}{'' if t['passed'] else ' ✗'}" for t in doc["trials"])
        + "."
    )


def _sweep(doc: dict[str, Any], stem: str) -> list[str]:
    k = doc["knob"]
    out = _preamble(doc, f"streamwarden sweep: {k['name']} ({k['meaning']}, this machine)", stem)
    out += [
        "| value | backlog frames/s | backlog CPU ms/frame "
        "| real-time segments p50 / p95 / p99 (s) | chat p99 (s) | lag growing "
        "| real-time cores | real-time CPU ms/frame "
        "| mean segments per batch | mean frames per call | other sessions' cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in doc["cases"]:
        bl = case["phases"].get("backlog_segments", {})
        rt = case["phases"].get("realtime", {})
        wm = rt.get("worker_metrics", {})
        growing = any(v["growing"] for v in rt.get("lag", {}).values())
        per_call = "/".join(f"{v:.1f}" for v in wm.get("mean_inference_batch_samples", {}).values())
        frames_per_s, cpu_ms = _f(bl.get("frames_per_s"), 2), _f(bl.get("cpu_ms_per_frame"))
        value = case["value"] + (
            f" (run of {case['reused_from']})" if "reused_from" in case else ""
        )
        out.append(
            f"| {value} | {frames_per_s} | {cpu_ms} "
            f"| {_lat(rt.get('latency_segment', {}))} "
            f"| {_f(rt.get('latency_chat', {}).get('p99_ms', 0) / 1000, 2)} | "
            f"{'yes' if growing else 'no'} | {_f(rt.get('cores_used'), 2)} | "
            f"{_f(plots.realtime_cpu_ms_per_frame(rt))} | "
            f"{_f(wm.get('mean_batch_records', {}).get('segment'), 1)} | {per_call or '–'} "
            f"| {_f(case.get('contention_cores'), 2)} |"
        )
    return out


def markdown(doc: dict[str, Any], stem: str) -> str:
    kinds = {"sw-bench-e2e.v1": _e2e, "sw-bench-capacity.v1": _capacity}
    return "\n".join(kinds.get(doc["schema"], _sweep)(doc, stem)) + "\n"


def summarize(folder: Path) -> Path:
    """``summary.md``: every e2e / capacity / sweep result in ``folder``, each with its command;
    each result's PNG and Markdown are drawn again from its JSON on the way."""
    parts = ["# streamwarden benchmarks (this machine)", ""]
    for path in sorted(folder.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        if not str(doc.get("schema", "")).startswith("sw-bench-"):
            continue
        write(doc, path.with_suffix(""))
        body = markdown(doc, path.stem).split("\n", 1)[1]
        parts += [f"## {path.stem}", body]
    out = folder / "summary.md"
    out.write_text("\n".join(parts))
    return out
