"""Every metric the Grafana dashboard queries exists in the code (prometheus_client's registry),
and every worker metric defined in the code is on the dashboard."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import orjson
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "streamwarden.json"
_DEFINES_METRIC = re.compile(r"\b(Counter|Histogram|Gauge|Summary)\(")
_METRIC_NAME = re.compile(r"\b((?:sw|process)_[a-z0-9_]+)")
# Series Prometheus itself adds to every scrape target.
_PROMETHEUS_BUILTINS = {"up"}


def _import_metric_modules() -> list[str]:
    """Import every module of pipeline/ and inference/ that defines a metric."""
    names = []
    for package in ("pipeline", "inference"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if _DEFINES_METRIC.search(path.read_text()) and "bench" not in path.parts:
                name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                importlib.import_module(name)
                names.append(name)
    return names


def _exported_names() -> dict[str, set[str]]:
    """family name -> the sample names Prometheus will store for it."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "gauge": ("",),
    }
    out = {}
    for family in REGISTRY.collect():
        out[family.name] = {family.name + s for s in suffixes.get(family.type, ("",))}
    return out


def _expressions() -> list[str]:
    doc = orjson.loads(DASHBOARD.read_bytes())
    exprs = []
    for panel in doc["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for var in doc["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_every_dashboard_metric_exists_in_the_code() -> None:
    modules = _import_metric_modules()
    assert "pipeline.metrics" in modules and "inference.batcher" in modules
    exported = set().union(*_exported_names().values()) | _PROMETHEUS_BUILTINS
    referenced = {m for e in _expressions() for m in _METRIC_NAME.findall(e)}
    assert referenced, "no metric found in the dashboard"
    missing = sorted(referenced - exported)
    assert not missing, f"dashboard queries metrics the code does not define: {missing}"


# What issue 6 asks the dashboard to show (names as stored by Prometheus).
REQUIRED = (
    "sw_records_in_total",
    "sw_records_out_total",
    "sw_dead_letters_total",
    "sw_decisions_total",
    "sw_batch_records_sum",
    "sw_batch_seconds_bucket",
    "sw_batch_retries_total",
    "sw_frames_sampled_total",
    "sw_frames_inferred_total",
    "sw_frames_deduplicated_total",
    "sw_batcher_call_seconds_bucket",
    "sw_batcher_queue_wait_seconds_bucket",
    "sw_batcher_batch_samples_sum",
    "sw_batcher_queued_requests",
    "sw_consumer_lag_records",
    "sw_event_loop_heartbeat_age_seconds",
    "process_resident_memory_bytes",
)


def test_the_metrics_the_issue_names_are_on_the_dashboard() -> None:
    referenced = {m for e in _expressions() for m in _METRIC_NAME.findall(e)}
    assert not sorted(set(REQUIRED) - referenced)


def test_every_worker_metric_is_on_the_dashboard() -> None:
    """A new metric needs a panel (deploy/grafana/streamwarden.json) to be seen."""
    _import_metric_modules()
    text = " ".join(_expressions())
    ours = sorted(n for n in _exported_names() if n.startswith("sw_"))
    absent = [n for n in ours if not re.search(rf"\b{n}(_total|_bucket|_sum|_count)?\b", text)]
    assert not absent, f"metrics defined in the code but on no dashboard panel: {absent}"


def test_dashboard_is_importable_grafana_json() -> None:
    doc = orjson.loads(DASHBOARD.read_bytes())
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 30
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        for target in panel.get("targets", []):
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
