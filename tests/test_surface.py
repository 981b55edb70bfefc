"""The public surface: ``import superlora_tn`` exports what a user calls; plumbing lives in
``superlora_tn.plumbing``; ``dir()`` lists the modules that load on first use."""

from __future__ import annotations

import subprocess
import sys

import superlora_tn as slt
from superlora_tn import plumbing


def test_all_is_what_a_user_calls():
    assert set(slt.__all__) == {"SuperLoRA", "SpecError", "Fastfood", "Gaussian", "Projection", "check_reduction",
                                "available_backends", "backend_for", "get_backend"}
    assert all(hasattr(slt, name) for name in slt.__all__)


def test_dir_lists_the_lazy_modules_and_the_exports():
    names = dir(slt)
    assert {"variants", "reference", "reductions", "plumbing", "__version__", *slt.__all__} <= set(names)
    assert "GroupNetwork" not in names and names == sorted(names)


def test_lazy_modules_load_on_first_use():
    code = ("import sys, superlora_tn as slt; before = 'superlora_tn.variants' in sys.modules; "
            "slt.variants.lora({'w': (4, 4)}, 2); print(before, 'superlora_tn.variants' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_plumbing_holds_the_types_behind_a_spec():
    spec = slt.SuperLoRA({"q": (8, 8)}, rank=2)
    assert isinstance(spec.groups[0], plumbing.GroupNetwork) and isinstance(spec.plan(), plumbing.Plan)
    assert isinstance(slt.get_backend("numpy"), plumbing.Backend) and isinstance(spec.config, plumbing.SpecConfig)
    assert slt.GroupNetwork is plumbing.GroupNetwork  # the name once exported here still resolves


def test_the_package_exports_the_facade_over_the_value():
    """The value class has no operations (spec.py imports nothing above it: tests/test_layers.py);
    the class the package exports is the facade's subclass, which adds them."""
    spec = slt.SuperLoRA({"w": (4, 4)}, rank=2)
    assert isinstance(spec, slt.spec.SpecValue) and type(spec) is slt.SuperLoRA
    assert not hasattr(slt.spec.SpecValue, "contract") and spec.contract()["w"].shape == (4, 4)
