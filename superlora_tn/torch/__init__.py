"""PyTorch integration: inject a SuperLoRA adapter into any ``nn.Module``, train, merge, save, load.

>>> from superlora_tn.torch import inject, load   # doctest: +SKIP
>>> adapted = inject(model, targets=r".*attention\\.self\\.(query|value)", spec=dict(rank=4))  # doctest: +SKIP

See docs/torch.md.
"""

from .io import load, read, save
from .model import AdaptedModel, inject
from .targets import LayerInfo, find_targets

__all__ = ["AdaptedModel", "LayerInfo", "find_targets", "inject", "load", "read", "save"]
