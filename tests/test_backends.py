"""Backends: chosen by array type or by name, loaded lazily, extendable by entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest
from helpers import BACKENDS, to_numpy

import superlora_tn as slt
from superlora_tn import backends
from superlora_tn.backends.numpy_backend import NumpyBackend


def test_import_does_not_import_torch_or_jax() -> None:
    code = "import sys, superlora_tn as s; s.SuperLoRA({'w': (4, 4)}).summary(); print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_array_type_picks_the_backend(backend: str) -> None:
    spec = slt.SuperLoRA({"w": (6, 4)}, rank=2)
    params = spec.init(backend, zero_init=False)
    assert slt.backend_for(next(iter(params.values()))).name == backend
    out = spec.contract(params)
    assert slt.backend_for(out["w"]).name == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_forcing_a_backend_converts_foreign_params(backend: str) -> None:
    spec = slt.SuperLoRA({"w": (6, 4)}, rank=2)
    params = spec.init("numpy", zero_init=False)
    out = spec.contract(params, backend=backend)
    assert slt.backend_for(out["w"]).name == backend
    np.testing.assert_allclose(to_numpy(out["w"]), spec.contract(params)["w"], rtol=1e-12)


def test_available_and_known_backends() -> None:
    assert set(BACKENDS) <= set(slt.available_backends())
    assert {"numpy", "torch", "jax"} <= set(backends.known_backends())


def test_third_party_backend_by_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    class Recording(NumpyBackend):
        name = "recording"
        framework = ""

    module = type(sys)("recording_backend_mod")
    module.Recording = Recording
    monkeypatch.setitem(sys.modules, "recording_backend_mod", module)
    ep = EntryPoint(name="recording", value="recording_backend_mod:Recording", group=backends.ENTRY_POINT_GROUP)
    monkeypatch.setattr(backends, "entry_points", lambda group: [ep] if group == backends.ENTRY_POINT_GROUP else [])
    backends._registry.cache_clear()
    try:
        assert "recording" in backends.known_backends()
        be = backends.get_backend("recording")
        assert isinstance(be, Recording)
        spec = slt.SuperLoRA({"w": (4, 4)}, rank=1)
        out = spec.contract(spec.init(zero_init=False), backend="recording")
        assert out["w"].shape == (4, 4)
    finally:
        backends._registry.cache_clear()
        backends._load.cache_clear()


def test_non_array_params_are_refused() -> None:
    spec = slt.SuperLoRA({"w": (4, 4)}, rank=1)
    fake = {name: [[0.0]] for name in spec.param_shapes}
    with pytest.raises(slt.SpecError):
        spec.contract(fake)
