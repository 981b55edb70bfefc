"""superlora_tn: SuperLoRA as one tensor-network algebra (LoRA, LoKr, LoTR, LoNKr, LoRTA, ...).

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"q": (64, 64)}, groups=1, fold="balanced", order=3, rank=4)
>>> spec.num_params
256
"""

from .backends import available_backends, backend_for, get_backend
from .errors import SpecError
from .network import GroupNetwork
from .projection import Fastfood, Gaussian, Projection
from .reductions import check_reduction
from .spec import SuperLoRA

__all__ = [
    "Fastfood",
    "Gaussian",
    "GroupNetwork",
    "Projection",
    "SpecError",
    "SuperLoRA",
    "available_backends",
    "backend_for",
    "check_reduction",
    "get_backend",
]

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy submodules: ``slt.variants``, ``slt.reference``, ``slt.reductions``
    if name in ("variants", "reference", "reductions"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
