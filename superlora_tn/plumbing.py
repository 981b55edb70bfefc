"""Plumbing: the types behind a spec, for readers of the source and authors of backends.

A user's code needs none of these by name: ``import superlora_tn as slt`` exports what a user
calls. They are what ``spec.targets``, ``spec.config``, ``spec.groups``, ``spec.plan()`` and
``slt.get_backend`` return, and the base class a third-party backend implements (docs/design.md §4).

- :class:`Target`: one adapted weight (name, shape, offset in dW_all).
- :class:`SpecConfig`: a spec's arguments, canonical and frozen (docs/design.md §2).
- :class:`Segment`: the part of a target a group generates.
- :class:`FactorSpec`: one Kronecker or Hadamard factor (structure, shape, ranks).
- :class:`GroupNetwork`: the tensor-network IR of one group (einsum equation, cost, drawing).
- :class:`Plan`: the cached contraction plan of a spec.
- :class:`Backend`: the protocol every backend adapter implements.

>>> import superlora_tn as slt
>>> from superlora_tn.plumbing import GroupNetwork, Plan, Target
>>> spec = slt.SuperLoRA({"q": (8, 8)}, rank=2)
>>> isinstance(spec.groups[0], GroupNetwork), isinstance(spec.plan(), Plan), isinstance(spec.targets[0], Target)
(True, True, True)
>>> from superlora_tn.plumbing import SpecConfig
>>> isinstance(spec.config, SpecConfig) and spec.config.rank == spec.config["rank"] == 2
True
"""

from __future__ import annotations

from .backends.base import Backend
from .config import SpecConfig
from .layout import Segment
from .network import GroupNetwork
from .plan import Plan
from .structures import FactorSpec
from .targets import Target

__all__ = ["Backend", "FactorSpec", "GroupNetwork", "Plan", "Segment", "SpecConfig", "Target"]
