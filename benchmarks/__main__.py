"""``python -m benchmarks``: the same as ``superlora-tn bench`` (the suite is ``superlora_tn.bench``)."""

from superlora_tn.bench.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
