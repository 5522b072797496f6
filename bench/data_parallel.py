"""Data-parallel step time on 1 vs N ranks (same as `graphc bench --ranks 1,2`).

    python -m bench.data_parallel --ranks 1,2 --steps 30
"""
import sys

from graphc.bench_ranks import run_as_module

if __name__ == "__main__":
    sys.exit(run_as_module("python -m bench.data_parallel"))
