"""Interoperability with other adapter libraries (imported lazily: ``from superlora_tn.interop import peft, lycoris``)."""

__all__ = ["lycoris", "peft"]
