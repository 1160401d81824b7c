"""PNG plots of the benchmark documents (matplotlib, Agg backend)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

__all__ = ["plot_capacity", "plot_e2e", "plot_sweep", "realtime_cpu_ms_per_frame"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(samples: list[dict[str, Any]], key: str, topic_suffix: str) -> list[float]:
    return [sum(v for t, v in s[key].items() if t.endswith(topic_suffix)) for s in samples]


def _cores(samples: list[dict[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """Between consecutive samples: CPU cores used by the workers (+ inference server), and by
    the whole host (everything, other sessions included)."""
    ts, cores, host = [], [], []
    for a, b in itertools.pairwise(samples):
        dt = b["t_s"] - a["t_s"]
        if dt <= 0:
            continue
        used = sum(x or 0 for x in b["worker_cpu_s"]) - sum(x or 0 for x in a["worker_cpu_s"])
        used += b.get("server_cpu_s", 0) - a.get("server_cpu_s", 0)
        ts.append(b["t_s"])
        cores.append(used / dt)
        host.append((b.get("host_busy_cpu_s", 0) - a.get("host_busy_cpu_s", 0)) / dt)
    return ts, cores, host


def _cdf(ax: Any, values: list[float], label: str) -> None:
    if values:
        ordered = sorted(values)
        ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)


def plot_e2e(doc: dict[str, Any], path: Path) -> None:
    """Latency CDF (real time), lag, cores used and RSS over time, phases shaded."""
    plt = _plt()
    case = doc["case"]
    samples = case.get("samples", [])
    t = [s["t_s"] for s in samples]
    rows = case["phases"].get("realtime", {}).get("latencies_ms", {})
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    ax = axes[0][0]
    _cdf(ax, rows.get("segment", []), "segments")
    _cdf(ax, rows.get("chat", []), "chat")
    ax.set_xscale("log")
    ax.set_xlabel("latency, input append -> result append (ms, log)")
    ax.set_ylabel("share of results")
    ax.set_title(f"real time: {case['config']['streams']} streams, latency CDF")
    ax.legend()
    ax = axes[0][1]
    ax.plot(t, _series(samples, "lag_records", ".segments"), label="segments (offsets)")
    ax.plot(t, _series(samples, "lag_records", ".chat"), label="chat (offsets)")
    ax.plot(t, _series(samples, "lag_gauge_records", ".segments"), "--", label="segments (gauge)")
    ax.set_ylabel("consumer lag (records)")
    ax.set_title("consumer lag over time")
    ax.legend(fontsize=8)
    ax = axes[1][0]
    ct, cores, host = _cores(samples)
    ax.plot(ct, cores, label="workers + inference server")
    ax.plot(ct, host, ":", label="whole host (other sessions included)")
    ax.set_ylabel("CPU cores")
    ax.set_title("CPU over time")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    for i in range(len(samples[0]["worker_rss_bytes"]) if samples else 0):
        ax.plot(t, [(s["worker_rss_bytes"][i] or 0) / 2**20 for s in samples], label=f"worker {i}")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("worker RSS over time")
    ax.legend(fontsize=8)
    for ax in (axes[0][1], axes[1][0], axes[1][1]):
        ax.set_xlabel("time (s)")
        for i, (name, phase) in enumerate(case["phases"].items()):
            w = phase.get("window")
            if w:
                ax.axvspan(w["t0_s"], w.get("t_produced_s", w["t1_s"]), alpha=0.08)
                at = (w["t0_s"], 0.9 - 0.07 * i)
                ax.annotate(name, at, fontsize=7, xycoords=("data", "axes fraction"))
    fig.suptitle(f"streamwarden end to end: {doc['segments']['label']}, this machine")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_capacity(doc: dict[str, Any], path: Path) -> None:
    plt = _plt()
    trials = sorted(doc["trials"], key=lambda x: x["streams"])
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    n = [x["streams"] for x in trials]
    for key, style in (("p50_ms", "o-"), ("p99_ms", "s-")):
        left.plot(n, [x["realtime"]["latency_segment"].get(key, 0) / 1000 for x in trials], style,
                  label=f"segments {key[:3]}")  # fmt: skip
    left.plot(n, [x["realtime"]["latency_chat"].get("p99_ms", 0) / 1000 for x in trials], "^--",
              label="chat p99")  # fmt: skip
    left.axhline(doc["criteria"]["p99_bound_ms"] / 1000, color="r", ls=":", label="p99 bound")
    for x in trials:
        left.annotate("ok" if x["passed"] else "FAIL", (x["streams"], 0), fontsize=7,
                      xycoords=("data", "axes fraction"))  # fmt: skip
    left.set_yscale("log")
    left.set_xlabel("real-time streams")
    left.set_ylabel("latency (s, log)")
    left.set_title(f"capacity: {doc['capacity_streams']} streams")
    left.legend(fontsize=8)
    mid.plot(n, [x["realtime"]["offered"]["segments_per_s"] for x in trials], "k:", label="offered")
    mid.plot(n, [x["realtime"]["segments_per_s"] for x in trials], "o-", label="achieved")
    mid.set_xlabel("real-time streams")
    mid.set_ylabel("segments/s")
    mid.set_title("throughput vs load")
    mid.legend(fontsize=8)
    for x in trials:
        s = x["samples"]
        if s:
            t0 = s[0]["t_s"]
            right.plot([v["t_s"] - t0 for v in s], _series(s, "lag_records", ".segments"),
                       label=f"{x['streams']} streams")  # fmt: skip
    right.set_xlabel("time in run (s)")
    right.set_ylabel("segment lag (records)")
    right.set_title("lag over time per trial")
    right.legend(fontsize=7)
    fig.suptitle(f"capacity of {doc['criteria']['workers']} worker(s), {doc['segments']['label']}, "
                 f"{doc['criteria']['sampling']}, this machine")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def realtime_cpu_ms_per_frame(rt: dict[str, Any]) -> float | None:
    """CPU of the workers (and inference server) per sampled frame under the real-time load:
    cores used / frames per second (the chat lines' small share included)."""
    if not rt or not rt.get("frames_per_s"):
        return None
    return float(rt["cores_used"]) * 1000 / float(rt["frames_per_s"])


def plot_sweep(doc: dict[str, Any], path: Path) -> None:
    """Throughput vs latency per value (real-time point -> backlog point), lag over time."""
    plt = _plt()
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    costs: list[str] = []
    for case in doc["cases"]:
        label = case["value"]
        rt = case["phases"].get("realtime", {})
        bl = case["phases"].get("backlog_segments", {})
        xs, ys = [], []
        if rt:
            xs.append(rt["frames_per_s"])
            ys.append(rt["latency_segment"].get("p99_ms", 0) / 1000)
        if bl:
            xs.append(bl.get("frames_per_s") or 0)
            ys.append(bl["latency_segment"].get("p99_ms", 0) / 1000)
        left.plot(xs, ys, "o-", label=label)
        s = [v for v in case.get("samples", []) if rt and rt["window"]["t0_s"] <= v["t_s"]]
        if s:
            t0 = s[0]["t_s"]
            mid.plot(
                [v["t_s"] - t0 for v in s], _series(s, "lag_records", ".segments"), label=label
            )
        at = len(costs)
        costs.append(label)
        right.bar(at - 0.2, bl.get("cpu_ms_per_frame") or 0, 0.4, color="C0")
        right.bar(at + 0.2, realtime_cpu_ms_per_frame(rt) or 0, 0.4, color="C1")
    left.set_yscale("log")
    left.set_xlabel("sampled frames/s (real-time load -> backlog = max)")
    left.set_ylabel("segment p99 latency (s, log)")
    left.set_title("throughput vs latency")
    left.legend(fontsize=8, title=doc["knob"]["name"])
    mid.set_xlabel("time since the real-time load began (s)")
    mid.set_ylabel("segment lag (records)")
    mid.set_title("lag over time (real time)")
    mid.legend(fontsize=8)
    right.set_xticks(range(len(costs)), costs)
    right.set_ylabel("CPU ms per sampled frame")
    right.set_title("cost per frame: backlog (blue), real time (orange)")
    fig.suptitle(f"sweep of {doc['knob']['name']} ({doc['knob']['meaning']}), "
                 f"{doc['segments']['label']}, this machine")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
