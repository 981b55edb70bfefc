"""Interoperability with other adapter libraries (imported lazily: ``from superlora_tn.interop import peft``)."""

__all__ = ["peft"]
