"""Reductions in one place: ``check_reduction`` here, and the names of three modules re-exported.

- :func:`identify` / :func:`reduces_to`: structural recognition (shapes and settings only).
- :func:`to_native` / :func:`from_native` (and ``to_lora``, ``from_lora``, ... for every
  registered variant): a spec's parameters as the variant's textbook parameters and back.
  ``reference.<formula>(*native[key])`` equals ``spec.contract(params)`` (per target for
  target-keyed variants, per group for the rest).
- :func:`reference_deltas` / :func:`check_reduction`: dW from the independent formulas of
  :mod:`superlora_tn.reference`, compared with the contracted network.
- :func:`lokr_to_lora`, :func:`lotr_to_lora` (exact), :func:`svd_to_lora` (truncated SVD, error
  reported) and :func:`to_lora_spec` (the best of those for any spec).

Each variant's recognition, native maps and formula are one object in the variant registry
(:mod:`~superlora_tn.registry`); :mod:`~superlora_tn.identify` and :mod:`~superlora_tn.native`
look them up, independent of the contraction path. The conversions are in
:mod:`~superlora_tn.conversions`.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (6, 5)}, rank=2)
>>> spec.identify(), reduces_to(spec)
('lora', ['lora'])
>>> slt.check_reduction(spec, "lora").max_error < 1e-12
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import native
from .backends import backend_for, get_backend
from .conversions import Conversion, lokr_to_lora, lotr_to_lora, svd_to_lora, to_lora_spec
from .errors import SpecError
from .identify import identify, reduces_to
from .native import _require, from_native, reference_deltas, to_native
from .registry import VARIANT_REGISTRY

if TYPE_CHECKING:
    from .facade import SuperLoRA

__all__ = [
    "Conversion",
    "ReductionReport",
    "check_reduction",
    "from_native",
    "identify",
    "lokr_to_lora",
    "lotr_to_lora",
    "reduces_to",
    "reference_deltas",
    "svd_to_lora",
    "to_lora_spec",
    "to_native",
    *(f"{d}_{name}" for name in VARIANT_REGISTRY for d in ("to", "from")),
]


def __getattr__(attr: str) -> Any:
    """``to_<variant>`` / ``from_<variant>`` of every registered variant (from :mod:`~superlora_tn.native`)."""
    direction, _, name = attr.partition("_")
    if direction in ("to", "from") and name in VARIANT_REGISTRY:
        return getattr(native, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


@dataclass(frozen=True)
class ReductionReport:
    """Contracted network vs. the reference formula: ``max_error`` = max |dW_net - dW_ref| (absolute)."""

    variant: str
    backend: str
    dtype: str
    max_error: float
    max_abs: float  # max |dW_ref|, to read max_error relative to it
    per_target: dict[str, float] = field(repr=False)

    @property
    def relative_error(self) -> float:
        return self.max_error / self.max_abs if self.max_abs else self.max_error

    def __float__(self) -> float:
        return self.max_error


def check_reduction(spec: SuperLoRA, name: str | None = None, *, backend: Any = "numpy", params: Mapping[str, Any] | None = None,
                    dtype: Any = "float64", seed: int | None = None) -> ReductionReport:
    """Contract the spec and compare with the variant's reference formula.

    Without ``params``, seeded random non-zero parameters in ``dtype`` on ``backend`` are used.
    """
    from .facade import SuperLoRA

    if not isinstance(spec, SuperLoRA):
        raise SpecError("spec", type(spec).__name__, "a SuperLoRA spec")
    name = identify(spec) if name is None else name
    _require(spec, name)
    be = get_backend(backend)
    if params is None:
        params = spec.init(be, zero_init=False, dtype=dtype, seed=seed)
    got = spec.contract(params, backend=be)
    want = reference_deltas(spec, params, name)
    src = backend_for(next(iter(got.values())))
    errors, biggest = {}, 0.0
    for t in spec.targets:
        a = np.asarray(src.to_numpy(got[t.name]), dtype=np.float64)
        b = np.asarray(backend_for(want[t.name]).to_numpy(want[t.name]), dtype=np.float64)
        errors[t.name] = float(np.abs(a - b).max())
        biggest = max(biggest, float(np.abs(b).max()))
    dname = be.dtype_name(be.dtype_of(next(iter(params.values()))))
    return ReductionReport(name, be.name, dname, max(errors.values()), biggest, errors)
