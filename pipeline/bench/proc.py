"""What a benchmark reads from the side: process CPU and RSS from ``/proc`` (Linux, no psutil),
and a worker's Prometheus ``/metrics``. The parsers are pure; the readers are one call each."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "ProcSample",
    "children_of",
    "diff",
    "host_cpu_s",
    "metric_by",
    "metric_sum",
    "parse_metrics",
    "parse_stat",
    "read_proc",
    "scrape",
    "tree_cpu_s",
]

_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

# (sample name, sorted label items) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class ProcSample:
    pid: int
    ppid: int
    cpu_s: float  # user + system of the process itself (all its threads)
    rss_bytes: int


def parse_stat(stat: str, statm: str) -> ProcSample:
    """``/proc/<pid>/stat`` and ``/proc/<pid>/statm`` text -> one sample. The command name
    (field 2) may hold spaces and parentheses, so fields are counted after its last ``)``."""
    pid = int(stat[: stat.index(" ")])
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15
    ppid, utime, stime = int(rest[1]), int(rest[11]), int(rest[12])
    rss_pages = int(statm.split()[1])
    return ProcSample(pid, ppid, (utime + stime) / _CLOCK_TICKS_PER_S, rss_pages * _PAGE_BYTES)


def read_proc(pid: int, root: Path = Path("/proc")) -> ProcSample | None:
    """The process's sample now; None when it is gone."""
    try:
        stat = (root / str(pid) / "stat").read_text()
        statm = (root / str(pid) / "statm").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return parse_stat(stat, statm)


def children_of(pid: int, root: Path = Path("/proc")) -> list[int]:
    """Direct children of ``pid`` (e.g. Triton's Python-backend stubs)."""
    out = []
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        sample = read_proc(int(entry.name), root)
        if sample is not None and sample.ppid == pid:
            out.append(sample.pid)
    return out


def parse_metrics(text: str) -> Samples:
    """Prometheus text exposition -> {(sample name, labels): value}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def metric_sum(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, items), v in samples.items() if n == name and want <= set(items))


def metric_by(samples: Samples, name: str, label: str) -> dict[str, float]:
    """``name`` summed per value of ``label``."""
    out: dict[str, float] = {}
    for (n, items), v in samples.items():
        if n == name:
            key = dict(items).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


def diff(
    after: Samples, before: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]
) -> Samples:
    """Counter increase between two scrapes (samples missing before count from 0)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 2.0) -> Samples:
    """One scrape of a worker's ``/metrics``; empty when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as r:
            return parse_metrics(r.read().decode())
    except OSError:
        return {}


def host_cpu_s(stat_path: Path = Path("/proc/stat")) -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole host since boot, all processes included
    (``/proc/stat`` first line; idle and iowait are not busy)."""
    fields = [int(x) for x in stat_path.read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    busy = total - fields[3] - fields[4]
    return busy / _CLOCK_TICKS_PER_S, total / _CLOCK_TICKS_PER_S


def tree_cpu_s(pids: Iterable[int]) -> float:
    """CPU seconds of the given live processes (gone ones count 0)."""
    return sum(s.cpu_s for p in pids if (s := read_proc(p)) is not None)
