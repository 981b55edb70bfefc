"""LyCORIS/kohya file format: module-name prefixes, the keys of each algorithm, one module's tensors.

Shared by :mod:`~superlora_tn.interop.lycoris_read` and :mod:`~superlora_tn.interop.lycoris_write`.

>>> lycoris_module_name("down_blocks.0.attn1.to_q", "lora_unet")
'lora_unet_down_blocks_0_attn1_to_q'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KERNELS", "LOHA_LEAVES", "LOKR_LEAVES", "LORA_LEAVES", "PREFIXES", "REFUSED", "Layer", "lycoris_module_name", "pad",
           "pad_core", "w1_shape", "w2_shape"]

#: Module-name prefixes of LyCORIS (``create_lycoris``) and kohya sd-scripts files.
PREFIXES = ("lycoris", "lora_unet", "lora_te1", "lora_te2", "lora_te3", "lora_te")
#: The keys (leaves after the module name) each algorithm's modules hold.
LORA_LEAVES = {"lora_up.weight", "lora_down.weight", "lora_mid.weight", "alpha"}
LOKR_LEAVES = {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", "alpha"}
LOHA_LEAVES = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "alpha"}
#: Leaves of LyCORIS algorithms that are not SuperLoRA settings, and the algorithm each names.
REFUSED = {
    "dora_scale": "DoRA weight decomposition (dora_wd)",
    "lokr_t1": "LoKr with a Tucker w1 (lokr_t1)",
    "oft_blocks": "OFT/BOFT", "oft_diag": "OFT (diag-oft)", "rescale": "OFT/BOFT (rescaled)",
    "a1.weight": "GLoRA", "a2.weight": "GLoRA", "b1.weight": "GLoRA", "b2.weight": "GLoRA", "bm.weight": "GLoRA",
    "diff": "full (dense diff)", "diff_b": "full (dense diff)",
    "weight": "IA3 or a norm module", "on_input": "IA3", "w_norm": "norm", "b_norm": "norm",
    "up.weight": "DyLoRA", "down.weight": "DyLoRA",
}

#: Square kernel sizes (kh * kw) tried for a LoKr conv read without its model (its w2_b holds the kernel flattened).
KERNELS = (1, 9, 4, 16, 25, 49)


@dataclass
class Layer:
    """One LyCORIS module of a file: its tensors (leaf -> tensor), algorithm, weight shape, r, alpha."""

    key: str  # the LyCORIS module name, e.g. "lycoris_down_0"
    name: str  # the target name (module path with a model, else ``key``)
    algo: str  # "lora", "lokr" or "loha"
    t: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] = ()
    kernel_known: bool = True  # False: a LoKr conv whose w2_b holds the kernel flattened, read without a model

    @property
    def alpha(self) -> float | None:
        a = self.t.get("alpha")
        return None if a is None else float(a)

    @property
    def rank(self) -> int | None:
        """LyCORIS's ``lora_dim`` of the layer (None: a LoKr of two full matrices, scale 1)."""
        t = self.t
        if self.algo == "lora":
            return int(t["lora_down.weight"].shape[0])
        if self.algo == "loha":
            return int(t["hada_w1_b"].shape[0])
        if "lokr_w1_a" in t:
            return int(t["lokr_w1_a"].shape[1])
        if "lokr_t2" in t:
            return int(t["lokr_t2"].shape[0])
        if "lokr_w2_a" in t:
            return int(t["lokr_w2_a"].shape[1])
        return None

    @property
    def scale(self) -> float:
        """alpha / r as LyCORIS's forward applies it (alpha missing or 0: r; both LoKr factors full: 1)."""
        r = self.rank
        if r is None:
            return 1.0
        alpha = self.alpha
        return float(r if not alpha else alpha) / r


def lycoris_module_name(name: str, prefix: str = "lycoris") -> str:
    """The LyCORIS/kohya key of a module path: ``prefix + "_" + name`` with dots as underscores.

    >>> lycoris_module_name("down_blocks.0.attn1.to_q", "lora_unet")
    'lora_unet_down_blocks_0_attn1_to_q'
    """
    if any(name.startswith(p + "_") for p in PREFIXES):
        return name.replace(".", "_")
    return f"{prefix}_{name}".replace(".", "_")


def w1_shape(t: Mapping[str, Any]) -> tuple[int, int]:
    if "lokr_w1" in t:
        return int(t["lokr_w1"].shape[0]), int(t["lokr_w1"].shape[1])
    return int(t["lokr_w1_a"].shape[0]), int(t["lokr_w1_b"].shape[1])


def w2_shape(t: Mapping[str, Any], shape: tuple[int, ...]) -> tuple[int, int]:
    """(b, d): w2's rows and its in-channel columns (kernel excluded)."""
    a, c = w1_shape(t)
    return shape[0] // a, shape[1] // c


def pad(x: Any, R: int, dim: int) -> Any:
    """Zero-pad dimension ``dim`` of x to R (exact: zero rank components add nothing)."""
    import torch

    r = x.shape[dim]
    if r == R:
        return x.contiguous()
    shape = list(x.shape)
    shape[dim] = R - r
    return torch.cat([x, torch.zeros(shape, dtype=x.dtype, device=x.device)], dim=dim)


def pad_core(t: Any, R: int) -> Any:
    return pad(pad(t, R, 0), R, 1)
