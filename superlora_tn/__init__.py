"""superlora_tn: SuperLoRA as one tensor-network algebra (LoRA, LoKr, LoTR, LoNKr, LoRTA, ...).

What a user calls is exported here: the spec (``SuperLoRA``), its error (``SpecError``), the
projections, ``check_reduction``, the backend look-ups, and the modules ``variants``,
``reference`` and ``reductions`` (loaded on first use). The types behind a spec
(``GroupNetwork``, ``Plan``, ``Backend``...) are in :mod:`superlora_tn.plumbing`.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"q": (64, 64)}, groups=1, fold="balanced", order=3, rank=4)
>>> spec.num_params
256
>>> {"variants", "reference", "reductions", "plumbing"} <= set(dir(slt))
True
"""

from __future__ import annotations

import importlib
from typing import Any

from .backends import available_backends, backend_for, get_backend
from .errors import SpecError
from .facade import SuperLoRA
from .projection import Fastfood, Gaussian, Projection
from .reductions import check_reduction

__all__ = [
    "Fastfood",
    "Gaussian",
    "Projection",
    "SpecError",
    "SuperLoRA",
    "available_backends",
    "backend_for",
    "check_reduction",
    "get_backend",
]

__version__ = "0.1.0"

LAZY_MODULES = ("variants", "reference", "reductions", "plumbing")  # ``slt.variants`` imports it on first use
MOVED = {"GroupNetwork": "plumbing"}  # names once exported here, still served from their module


def __getattr__(name: str) -> Any:
    if name in LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in MOVED:
        return getattr(importlib.import_module(f".{MOVED[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *LAZY_MODULES, "__version__"})
