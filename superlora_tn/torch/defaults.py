"""Two tables, each in one place: default targets per architecture, and PEFT spellings.

``DEFAULT_TARGETS`` maps a Hugging Face ``config.model_type`` to the module names ``inject``
adapts when ``targets`` is omitted (the attention query and value projections, as PEFT's
defaults for LoRA). ``PEFT_SPELLINGS`` maps a PEFT argument name to this library's; ``inject``
and ``spec=`` refuse a PEFT spelling with a ``SpecError`` that names ours. docs/huggingface.md
prints both tables (a test checks they match).

>>> default_targets_for("bert")
['query', 'value']
>>> refuse_peft_spelling("spec", "r")
Traceback (most recent call last):
...
superlora_tn.errors.SpecError: spec='r' is invalid: expected rank= (the PEFT spelling r= is not used here)
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError

__all__ = ["DEFAULT_TARGETS", "PEFT_SPELLINGS", "default_targets", "default_targets_for", "refuse_peft_spelling"]

DEFAULT_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"],
    "vit": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
    "gpt2": ["c_attn"],
    "gpt_neox": ["query_key_value"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "mixtral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "bart": ["q_proj", "v_proj"],
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
}

# PEFT argument -> this library's spelling (where the argument goes: inject(...) or spec=dict(...))
PEFT_SPELLINGS: dict[str, str] = {
    "target_modules": "targets=",
    "exclude_modules": "exclude=",
    "r": "rank=",
    "lora_alpha": "alpha=",
    "lora_dropout": "dropout=",
    "init_lora_weights": "zero_init=",
    "use_rslora": "alpha=lora_alpha * sqrt(r) (the scale is alpha / rank, so this gives rslora's lora_alpha / sqrt(r))",
    "rank_pattern": "a SuperLoRA spec built by interop.peft.from_peft (per-target ranks are padded, exact)",
    "alpha_pattern": "scale= (a dict target -> scale)",
    "fan_in_fan_out": "nothing (GPT-2 Conv1D is detected from the layer)",
    "task_type": "nothing (the model's own head and loss are used as they are)",
    "peft_type": "spec= settings (LoRA is rank=r; LoKr is splits=2, structure=['dense', 'lora'])",
    "bias": "modules_to_save= (train a whole module, bias included)",
}


def default_targets_for(model_type: str | None) -> list[str]:
    """The default target names for a ``config.model_type`` (SpecError when there is none)."""
    if model_type not in DEFAULT_TARGETS:
        raise SpecError("targets", None, f"a selector: there is no default for model_type {model_type!r} "
                        f"(defaults exist for {', '.join(DEFAULT_TARGETS)})")
    return list(DEFAULT_TARGETS[model_type])


def default_targets(model: Any) -> list[str]:
    """The default targets of a Hugging Face model, from ``model.config.model_type``."""
    return default_targets_for(getattr(getattr(model, "config", None), "model_type", None))


def refuse_peft_spelling(where: str, name: str) -> None:
    """SpecError naming this library's argument for a PEFT spelling (nothing for other names)."""
    if name in PEFT_SPELLINGS:
        raise SpecError(where, name, f"{PEFT_SPELLINGS[name]} (the PEFT spelling {name}= is not used here)")
