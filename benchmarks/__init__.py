"""``python -m benchmarks`` from a checkout: the suite lives in ``superlora_tn.bench``."""
