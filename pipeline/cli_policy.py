"""``streamwarden policy check FILE`` and ``streamwarden kpi``.

Register in ``pipeline.cli``::

    from pipeline.cli_policy import kpi, policy_app
    app.add_typer(policy_app, name="policy")
    app.command()(kpi)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.kpi import KpiReport, Percentiles, Precision, compute_kpis
from pipeline.policy.loader import PolicyError, load_policy

__all__ = ["VERDICTS_ROLE", "kpi", "policy_app", "read_topics"]

VERDICTS_ROLE = "review_verdicts"  # TopicNames role of the reviewer-verdict topic
VERDICTS_SUFFIX = "review-verdicts"

policy_app = typer.Typer(no_args_is_help=True, help="Policy files.")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


@policy_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="policy YAML file")],
) -> None:
    """Validate a policy file; every problem is printed with its line. Exit 1 if invalid."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        for issue in exc.issues:
            err_console.print(issue.render(str(file)), highlight=False, markup=False)
        err_console.print(f"[red]{file}: {len(exc.issues)} problem(s)[/]")
        raise typer.Exit(1) from exc
    shadow = [r.name for r in policy.rules if r.shadow]
    console.print(
        f"[green]✓[/] {file}: policy [bold]{policy.version}[/]: {len(policy.rules)} rules "
        f"({len(policy.rules) - len(shadow)} live, {len(shadow)} shadow), "
        f"{len(policy.regions)} regional overrides, DSA statements "
        f"{'on' if policy.dsa.enabled else 'off'}",
        highlight=False,
    )
    for name in shadow:
        console.print(f"  shadow: {name}", highlight=False)


def read_topics(
    from_beginning: bool, idle_timeout_s: float
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role, document) from the actions, review-task and verdict topics."""
    from pipeline.settings import KafkaSettings
    from pipeline.tail import iter_outputs
    from pipeline.topics import TopicNames

    kafka = KafkaSettings()
    names = TopicNames.with_prefix(kafka.topic_prefix)
    topics = SimpleNamespace(
        actions=names.actions,
        review=names.review,
        review_verdicts=getattr(names, VERDICTS_ROLE, kafka.topic_prefix + VERDICTS_SUFFIX),
    )
    yield from iter_outputs(
        kafka,
        topics,  # type: ignore[arg-type]
        from_beginning=from_beginning,
        idle_timeout_s=idle_timeout_s,
        roles=("actions", "review", VERDICTS_ROLE),
    )


def kpi(
    from_beginning: Annotated[bool, typer.Option(help="read the topics from the start")] = True,
    idle_timeout_s: Annotated[
        float, typer.Option(min=0.1, help="stop reading after this long without a record")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Precision, time to action and automated share from actions, review tasks and verdicts."""
    docs: dict[str, list[dict[str, Any]]] = {"actions": [], "review": [], VERDICTS_ROLE: []}
    for role, doc in read_topics(from_beginning, idle_timeout_s):
        if isinstance(doc, dict) and role in docs:
            docs[role].append(doc)
    report = compute_kpis(docs["actions"], docs["review"], docs[VERDICTS_ROLE])
    if as_json:
        console.print_json(json.dumps(report.to_doc()))
        return
    console.print(
        f"{len(docs['actions'])} actions, {len(docs['review'])} review tasks, "
        f"{len(docs[VERDICTS_ROLE])} verdicts read"
    )
    _print_report(report)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _precision_table(title: str, rows: dict[str, Precision]) -> Table:
    table = Table(title=title)
    for col in ("", "confirmed", "overturned", "precision"):
        table.add_column(col, justify="left" if not col else "right")
    for name, p in rows.items():
        table.add_row(name, str(p.confirmed), str(p.overturned), _pct(p.value))
    return table


def _print_report(report: KpiReport) -> None:
    share = _pct(report.automated_share)
    console.print(
        f"automated actions {report.automated_actions}, reviewer-confirmed "
        f"{report.human_actions}: automated share [bold]{share}[/]; open review tasks "
        f"{report.tasks_open}",
        highlight=False,
    )
    for title, rows in (
        ("Automated actions: precision by category", report.action_precision_by_category),
        ("Automated actions: precision by rule", report.action_precision_by_rule),
        ("Review band: confirmed share by category", report.review_precision_by_category),
        ("Review band: confirmed share by rule", report.review_precision_by_rule),
    ):
        if rows:
            console.print(_precision_table(title, dict(rows)))
    table = Table(title="Time to action (seconds)")
    for col in ("category/mode", "n", "p50", "p90", "p95", "p99", "max"):
        table.add_column(col, justify="left" if col == "category/mode" else "right")
    series: dict[str, Percentiles] = dict(report.time_to_action)
    if report.review_latency is not None:
        series["review latency"] = report.review_latency
    for name, p in series.items():
        table.add_row(
            name,
            str(p.count),
            *(f"{x:.2f}" for x in (p.p50_s, p.p90_s, p.p95_s, p.p99_s, p.max_s)),
        )
    if series:
        console.print(table)
