"""End-to-end benchmarks of streamwarden through the real broker and real worker processes.

* :mod:`~pipeline.bench.stats`: pure numbers (percentiles, lag slope, capacity search);
* :mod:`~pipeline.bench.load`: the pre-encoded segment pool and the livestream load;
* :mod:`~pipeline.bench.workers`: broker, Triton, topics, worker subprocesses;
* :mod:`~pipeline.bench.observe`: the results reader and the lag/CPU/RSS sampler;
* :mod:`~pipeline.bench.phases`, :mod:`~pipeline.bench.runner`: one case;
* :mod:`~pipeline.bench.efficiency`: isolated costs and the throughput bound;
* :mod:`~pipeline.bench.baseline`: the plain loop a team would write first;
* :mod:`~pipeline.bench.commands`, :mod:`~pipeline.bench.capacity`, :mod:`~pipeline.bench.knobs`,
  :mod:`~pipeline.bench.report`, :mod:`~pipeline.bench.plots`, :mod:`~pipeline.bench.cli`:
  ``streamwarden bench``.
"""
