"""PyTorch integration: inject a SuperLoRA adapter into any ``nn.Module``, train, merge, save, load.

>>> from superlora_tn.torch import inject, load   # doctest: +SKIP
>>> adapted = inject(model, targets=r".*attention\\.self\\.(query|value)", spec=dict(rank=4))  # doctest: +SKIP

See docs/torch.md.
"""

from .defaults import DEFAULT_TARGETS, PEFT_SPELLINGS
from .io import read, save
from .loading import from_pretrained, load
from .model import AdaptedModel, inject
from .targets import LayerInfo, find_targets

__all__ = ["DEFAULT_TARGETS", "PEFT_SPELLINGS", "AdaptedModel", "LayerInfo", "find_targets", "from_pretrained", "inject", "load",
           "read", "save"]
