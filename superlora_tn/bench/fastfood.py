# ruff: noqa: B023  (timed lambdas are called immediately, inside the loop)
"""Case 4: the fastfood projection and the fast Walsh–Hadamard transform vs the copy floor."""

from __future__ import annotations

import numpy as np

from superlora_tn.backends import get_backend
from superlora_tn.hadamard import hadamard_blocks
from superlora_tn.projection import Fastfood

from .common import Table, median_time


def butterfly(x: np.ndarray) -> np.ndarray:
    """The radix-2 transform written the obvious way: log2(L) vectorised add/sub passes."""
    y = x.reshape(-1)
    h, n = 1, y.shape[0]
    while h < n:
        y = y.reshape(-1, 2, h)
        y = np.stack([y[:, 0] + y[:, 1], y[:, 0] - y[:, 1]], axis=1)
        h *= 2
    return y.reshape(x.shape)


def _convert(be, value):
    if isinstance(value, np.ndarray):
        return be.asarray(value, dtype="float32" if value.dtype.kind == "f" else None)
    if isinstance(value, list):
        return [_convert(be, v) for v in value]
    return value


def run(table: Table, repeats: int, quick: bool) -> None:
    sizes = (1 << 20,) if quick else (1 << 20, 1 << 24)
    for n in sizes:
        case = f"fastfood 2^{n.bit_length() - 1} float32"
        F = Fastfood(1.0)
        raw = F.constants([n], [n], 0, [0])
        u_np = np.random.default_rng(1).standard_normal((1, n)).astype(np.float32)
        reps = max(1, repeats // 2) if n > 1 << 20 else repeats
        for name in ("numpy", "torch"):
            be = get_backend(name)
            c = {k: _convert(be, v) for k, v in raw.items()}
            u = be.asarray(u_np)
            flat = u.reshape(-1)
            dst = np.empty_like(u_np.reshape(-1)) if name == "numpy" else flat.clone()
            ref = f"floor: copy bytes ({name})"
            copy = (lambda dst=dst, flat=flat: np.copyto(dst, flat)) if name == "numpy" else (lambda dst=dst, flat=flat: dst.copy_(flat))
            table.add(case, ref, median_time(copy, repeats * 3))
            table.add(case, f"ours Fastfood.apply ({name})", median_time(lambda u=u, c=c, be=be: F.apply(u, c, be), reps), ref)
            table.add(case, f"ours fwht ({name})", median_time(lambda u=u, c=c, be=be: be.fwht(u, c["blocks"]), reps), ref)
        blocks = hadamard_blocks(n)
        table.add(case, "radix-2 butterfly, obvious (numpy)", median_time(lambda: butterfly(u_np), reps), "ours fwht (numpy)")
        del blocks
