"""Test set-up: 64-bit JAX for the float64 identities (a test-process switch, never the library's)."""

import importlib.util

if importlib.util.find_spec("jax") is not None:
    import jax

    jax.config.update("jax_enable_x64", True)
