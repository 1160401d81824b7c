"""``python -m pipeline.bench``: the same commands as ``streamwarden bench``."""

from pipeline.bench.cli import main

main()
