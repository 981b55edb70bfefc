"""Seeded initial parameters, drawn in NumPy and converted (bit-identical on every backend;
docs/design.md §2, "Initialisation").

Draws per group g from ``default_rng([seed, g])`` in a fixed order, so a group's values do not
depend on the other groups. Each structure sets its blocks' scale (``Structure.init_divisor``):
factor matrices A_m (n, r) ~ N(0, 1/n), cores ~ N(0, 1), dense factors ~ N(0, 1/(size / first
mode)). Every block is drawn before any is zeroed, so the
non-zero values are the same with and without ``zero_init``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import get_backend
from .errors import SpecError
from .validate import as_nonnegative_int, plain

if TYPE_CHECKING:
    from .spec import SpecValue

__all__ = ["FLOAT_DTYPES", "check_device", "check_float_dtype", "draw_numpy", "init_params", "zero_blocks"]


def zero_blocks(spec: SpecValue, zero_init: Any) -> set[str]:
    """The parameter names to zero; refuses two in one group (a dead adapter)."""
    zero_init = plain(zero_init)
    if zero_init is True:
        return {g.zero_block for g in spec.groups}
    if zero_init is False or zero_init is None:
        return set()
    if isinstance(zero_init, str) or not isinstance(zero_init, Iterable):
        raise SpecError("zero_init", zero_init, "True, False, or an iterable of parameter names")
    try:
        names = list(zero_init)
    except TypeError:
        raise SpecError("zero_init", zero_init, "True, False, or an iterable of parameter names") from None
    known = spec.param_shapes
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise SpecError("zero_init", name, f"parameter names such as {list(known)[:4]}")
    chosen = set(names)
    for g in spec.groups:
        hit = sorted(chosen & set(g.param_shapes))
        if len(hit) > 1:
            raise SpecError(
                "zero_init", hit,
                f"at most one zero block per group: zeroing {hit} in group {g.index} makes every "
                "gradient zero forever (a dead adapter)",
            )
    return chosen


FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def check_float_dtype(backend: Any, dtype: Any) -> Any:
    """The backend's dtype for ``dtype`` if it is a floating type, else a SpecError."""
    try:
        resolved = backend.resolve_dtype(dtype)
    except (TypeError, AttributeError, ValueError):
        resolved = None
    if resolved is None or backend.dtype_name(resolved) not in FLOAT_DTYPES:
        raise SpecError("dtype", dtype, f"a floating dtype of {backend.name}: one of {FLOAT_DTYPES}")
    return resolved


def check_device(backend: Any, device: Any, dtype: Any) -> None:
    """SpecError unless ``device`` is None or a device ``backend`` can put an array on (tried on one entry)."""
    if device is None:
        return
    try:
        probe = backend.asarray(np.zeros(1), dtype=dtype, device=device)
    except SpecError:
        raise
    except Exception as exc:  # each framework has its own error for an unknown or absent device
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
        raise SpecError("device", device, f"a device {backend.name} has here ({reason})") from None
    if backend.name == "torch" and getattr(getattr(probe, "device", None), "type", None) == "meta":
        raise SpecError("device", device, "a device that holds values (meta tensors have none)")


def draw_numpy(spec: SpecValue, seed: int | None = None) -> dict[str, np.ndarray]:
    """All parameters as float64 NumPy arrays, none zeroed."""
    seed = spec.config.seed if seed is None else as_nonnegative_int("seed", seed)
    out: dict[str, np.ndarray] = {}
    for g in spec.groups:
        rng = np.random.default_rng([seed, g.index])
        for node in g.tensors:
            values = rng.standard_normal(node.shape)
            divisor = g.factors[node.factor].kind.init_divisor(node.local, node.shape)
            if divisor != 1.0:
                values /= divisor
            out[node.name] = values
    return out


def init_params(spec: SpecValue, backend: Any = "numpy", *, seed: int | None = None, zero_init: Any = True,
                dtype: Any = None, device: Any = None) -> dict[str, Any]:
    """Initial parameters on ``backend`` in ``dtype`` (default: the backend's default float)."""
    be = get_backend(backend)
    dtype = check_float_dtype(be, be.default_dtype() if dtype is None else dtype)
    check_device(be, device, dtype)
    zeros = zero_blocks(spec, zero_init)
    values = draw_numpy(spec, seed)
    for name in zeros:
        values[name] = np.zeros_like(values[name])
    return {name: be.asarray(v, dtype=dtype, device=device) for name, v in values.items()}
