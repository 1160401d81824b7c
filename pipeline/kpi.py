"""Moderation KPIs from actions, review tasks and reviewer verdicts. Pure computation,
plus the Prometheus metrics that carry the same numbers live.

* precision, per category and per rule, of automated actions (verdicts on tasks that audit or
  appeal an action: confirmed / (confirmed + overturned)) and of the review band (the share of
  review tasks a reviewer confirmed: how often the band catches real violations);
* time to action: input time (the evidence frame's wall-clock time, else the input record's
  Kafka time) to action time (``decided_at`` of an automated action, or of the confirming
  verdict for a review-band task), p50/p90/p95/p99 per category;
* share of actions taken automatically (automated / automated + reviewer-confirmed);
* review backlog and review latency (task created -> verdict).

Verdicts: the latest ``decided_at`` per task counts.

Live, in the worker: every published action and review task is counted as it is acknowledged
(``observe_outputs``), with its time to action; the verdict agent counts every verdict
(``observe_verdict``, its category and rule as the verdict states them) and ``LIVE`` keeps
the precision and automated-share gauges from what this worker has seen since it started.
Across several workers, compute precision from ``sw_review_verdicts_total`` (exact when
summed); ``streamwarden kpi`` joins verdicts to their tasks and actions for the full report,
with human time to action.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter, Gauge, Histogram

from pipeline.records import OutRecord, parse_iso

# ---- Prometheus (observe_* from the agents that publish actions / consume verdicts) ---------
ACTIONS = Counter(
    "sw_enforcement_actions_total",
    "Enforcement actions published",
    ["category", "rule", "action", "automated"],
)
SHADOW_DECISIONS = Counter(
    "sw_shadow_decisions_total", "Shadow-rule decisions (results only)", ["rule", "kind", "action"]
)
REVIEW_TASKS = Counter("sw_review_tasks_total", "Review tasks created", ["category", "rule"])
VERDICTS = Counter(
    "sw_review_verdicts_total",
    "Reviewer verdicts consumed",
    ["category", "rule", "subject", "verdict"],
)
TIME_TO_ACTION = Histogram(
    "sw_time_to_action_seconds",
    "Input time to action time",
    ["category", "automated"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
PRECISION = Gauge(
    "sw_precision",
    "Confirmed share of reviewed decisions, by category or by rule",
    ["scope", "name", "subject"],
)
AUTOMATED_SHARE = Gauge("sw_automated_action_share", "Share of actions taken automatically")


@dataclass(frozen=True)
class Precision:
    confirmed: int = 0
    overturned: int = 0

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.overturned

    @property
    def value(self) -> float | None:
        return self.confirmed / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    max_s: float


@dataclass(frozen=True)
class KpiReport:
    automated_actions: int
    human_actions: int
    action_precision_by_category: Mapping[str, Precision] = field(default_factory=dict)
    action_precision_by_rule: Mapping[str, Precision] = field(default_factory=dict)
    review_precision_by_category: Mapping[str, Precision] = field(default_factory=dict)
    review_precision_by_rule: Mapping[str, Precision] = field(default_factory=dict)
    time_to_action: Mapping[str, Percentiles] = field(default_factory=dict)  # "category/mode"
    review_latency: Percentiles | None = None
    tasks_open: int = 0

    @property
    def automated_share(self) -> float | None:
        total = self.automated_actions + self.human_actions
        return self.automated_actions / total if total else None

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["automated_share"] = self.automated_share
        for key in [k for k in doc if "precision" in k]:
            for p in doc[key].values():
                p["precision"] = Precision(**p).value
        return doc


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (as numpy's default), ``q`` in [0, 100]."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: Iterable[float]) -> Percentiles | None:
    v = sorted(values)
    if not v:
        return None
    p50, p90, p95, p99 = (round(percentile(v, q), 3) for q in (50, 90, 95, 99))
    return Percentiles(len(v), p50, p90, p95, p99, round(v[-1], 3))


def input_time_s(doc: Mapping[str, Any]) -> float | None:
    """When the content appeared: earliest evidence frame time, else the input's Kafka time."""
    frames = [
        parse_iso(e["frame_time"]).timestamp() for e in doc.get("evidence", ()) if "frame_time" in e
    ]
    if frames:
        return min(frames)
    produced = doc.get("input", {}).get("produced_at")
    return parse_iso(produced).timestamp() if produced else None


def latest_verdicts(verdicts: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    latest: dict[str, Mapping[str, Any]] = {}
    for v in verdicts:
        have = latest.get(v["task_id"])
        if have is None or parse_iso(v["decided_at"]) >= parse_iso(have["decided_at"]):
            latest[v["task_id"]] = v
    return latest


def _tally(counts: dict[str, list[int]], key: str, confirmed: bool) -> None:
    counts[key][0 if confirmed else 1] += 1


def compute_kpis(
    actions: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
    verdicts: Iterable[Mapping[str, Any]],
) -> KpiReport:
    """Join verdicts to their tasks (and audited actions) and compute the report."""
    # a lift ends a restriction: it is neither an enforcement to measure nor a time to action
    actions_by_id = {a["id"]: a for a in actions if a["action"] != "lift"}
    tasks_by_id = {t["id"]: t for t in tasks}
    latest = latest_verdicts(verdicts)
    act_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    act_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rev_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rev_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    tta: dict[str, list[float]] = defaultdict(list)
    latency: list[float] = []
    human = 0
    for a in actions_by_id.values():
        if (t0 := input_time_s(a)) is not None:
            tta[f"{a['category']}/automated"].append(parse_iso(a["decided_at"]).timestamp() - t0)
    for task_id, v in latest.items():
        task = tasks_by_id.get(task_id, {})
        audited_id = v.get("action_id") or task.get("action_id")
        subject = actions_by_id.get(audited_id, {}) if audited_id else task
        category = subject.get("category") or v.get("category") or "unknown"
        rule = subject.get("rule") or v.get("rule") or "unknown"
        confirmed = v["verdict"] == "confirm"
        if audited_id:
            _tally(act_cat, category, confirmed)
            _tally(act_rule, rule, confirmed)
            continue
        _tally(rev_cat, category, confirmed)
        _tally(rev_rule, rule, confirmed)
        decided_s = parse_iso(v["decided_at"]).timestamp()
        if task.get("created_at"):
            latency.append(decided_s - parse_iso(task["created_at"]).timestamp())
        if confirmed:
            human += 1
            if task and (t0 := input_time_s(task)) is not None:
                tta[f"{category}/human"].append(decided_s - t0)
    open_tasks = sum(1 for t in tasks_by_id if t not in latest)

    def prec(c: Mapping[str, list[int]]) -> dict[str, Precision]:
        return {k: Precision(*v) for k, v in sorted(c.items())}

    return KpiReport(
        automated_actions=len(actions_by_id),
        human_actions=human,
        action_precision_by_category=prec(act_cat),
        action_precision_by_rule=prec(act_rule),
        review_precision_by_category=prec(rev_cat),
        review_precision_by_rule=prec(rev_rule),
        time_to_action={k: p for k, v in sorted(tta.items()) if (p := summarize(v)) is not None},
        review_latency=summarize(latency),
        tasks_open=open_tasks,
    )


def observe_action(action: Mapping[str, Any], *, automated: bool = True) -> None:
    """Count a published action and its time to action (call after the broker acked it)."""
    mode = "yes" if automated else "no"
    ACTIONS.labels(action["category"], action["rule"], action["action"], mode).inc()
    if action["action"] != "lift" and (t0 := input_time_s(action)) is not None:
        elapsed = parse_iso(action["decided_at"]).timestamp() - t0
        TIME_TO_ACTION.labels(action["category"], mode).observe(max(0.0, elapsed))


def observe_verdict(verdict: Mapping[str, Any], subject: Mapping[str, Any]) -> None:
    """Count a verdict; ``subject`` is its review task, or the audited action."""
    kind = "action" if verdict.get("action_id") or subject.get("action_id") else "review_band"
    VERDICTS.labels(
        subject.get("category", "unknown"), subject.get("rule", "unknown"), kind, verdict["verdict"]
    ).inc()


def export_report(report: KpiReport) -> None:
    """Set the precision and automated-share gauges from a computed report."""
    groups = (
        ("category", "action", report.action_precision_by_category),
        ("rule", "action", report.action_precision_by_rule),
        ("category", "review_band", report.review_precision_by_category),
        ("rule", "review_band", report.review_precision_by_rule),
    )
    for scope, subject, precisions in groups:
        for name, p in precisions.items():
            if p.value is not None:
                PRECISION.labels(scope, name, subject).set(p.value)
    if report.automated_share is not None:
        AUTOMATED_SHARE.set(report.automated_share)


class LiveKpis:
    """Precision and automated share from what this worker saw: sets the gauges."""

    def __init__(self) -> None:
        self.automated = 0
        self.confirmed_reviews = 0
        self._tallies: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])

    def action(self, *, automated: bool) -> None:
        if automated:
            self.automated += 1
        self._share()

    def verdict(self, verdict: Mapping[str, Any]) -> None:
        subject = "action" if verdict.get("action_id") else "review_band"
        confirmed = verdict["verdict"] == "confirm"
        for scope, name in (("category", verdict.get("category")), ("rule", verdict.get("rule"))):
            tally = self._tallies[(scope, str(name or "unknown"), subject)]
            tally[0 if confirmed else 1] += 1
            PRECISION.labels(scope, str(name or "unknown"), subject).set(tally[0] / sum(tally))
        if confirmed and subject == "review_band":
            self.confirmed_reviews += 1
        self._share()

    def _share(self) -> None:
        total = self.automated + self.confirmed_reviews
        if total:
            AUTOMATED_SHARE.set(self.automated / total)


LIVE = LiveKpis()


def observe_outputs(records: Iterable[OutRecord]) -> None:
    """Count acknowledged actions (and their time to action), review tasks and shadow
    decisions (call after the broker acknowledged them)."""
    for r in records:
        headers = {k: v.decode() for k, v in r.headers}
        if r.topic == "actions":
            doc = orjson.loads(r.value)
            automated = bool(doc.get("automated", True))
            observe_action(doc, automated=automated)
            LIVE.action(automated=automated)
        elif r.topic == "review":
            REVIEW_TASKS.labels(
                headers.get("sw-category", "unknown"), headers.get("sw-rule", "")
            ).inc()
        elif r.topic == "results" and headers.get("sw-shadow") == "1":
            for o in orjson.loads(r.value).get("outcomes", ()):
                if o["shadow"]:
                    SHADOW_DECISIONS.labels(o["rule"], o["kind"], o.get("action") or "none").inc()
