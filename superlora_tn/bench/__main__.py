"""``superlora-tn bench`` / ``python -m superlora_tn.bench [--quick] [--only CASE ...] [--threads N]``: every case, one table."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

CASES = ("materialise", "overhead", "apply", "fastfood", "planning")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="superlora-tn bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes (< 2 minutes)")
    parser.add_argument("--only", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1: stable on a shared machine)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    if "numpy" not in sys.modules:  # only effective before NumPy's BLAS starts
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(args.threads))
    import importlib

    import torch

    from .common import Table

    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 9)
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "0")
    print(f"superlora_tn benchmarks: {platform.machine()}, {os.cpu_count()} cpus, threads={args.threads}, "
          f"torch {torch.__version__},\n  THP_MEM_ALLOC_ENABLE={thp}, repeats={repeats}{' (quick)' if args.quick else ''}", flush=True)
    table = Table()
    start = time.perf_counter()
    for name in args.only:
        print(f"[{name}]", flush=True)
        importlib.import_module(f"{__package__}.{name}").run(table, repeats, args.quick)
    print()
    print(table.render())
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
