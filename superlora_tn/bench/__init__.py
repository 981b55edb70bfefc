"""Benchmark suite: superlora_tn against PEFT, tensorly, opt_einsum and naive einsum.

Run ``superlora-tn bench`` (or ``python -m superlora_tn.bench``; ``python -m benchmarks`` in a
checkout); ``--quick`` for a short run. Every case is timed side by side in one process and
printed as medians and ratios (see docs/performance.md for how to read the table).
"""
