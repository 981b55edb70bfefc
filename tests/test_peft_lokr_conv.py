"""PEFT LoKr on convolutions, both ways: Conv1d and Conv2d (3x3, 1x1), decompose_both and
use_effective_conv2d on and off, against PEFT itself (its forward and its get_delta_weight).

Each case reads the PEFT model and its saved directory with ``load_peft`` (forward equal to
PEFT's), writes ours back with ``save_peft`` and loads that with ``PeftModel.from_pretrained``
(forward equal again). The largest relative error of each case is printed at the end.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from superlora_tn.errors import SpecError
from superlora_tn.interop.peft import from_peft, load_peft, save_peft
from superlora_tn.torch import inject

peft = pytest.importorskip("peft")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ERRORS: dict[str, float] = {}
RTOL, ATOL = 2e-5, 2e-6


class Net(nn.Module):
    """Conv2d 3x3 -> Conv2d 1x1 -> Conv1d k=3 -> Linear (each a LoKr target in some case)."""

    def __init__(self) -> None:
        super().__init__()
        self.c3x3 = nn.Conv2d(64, 64, 3, padding=1)
        self.c1x1 = nn.Conv2d(64, 48, 1)
        self.c1d = nn.Conv1d(48, 64, 3, padding=1)
        self.lin = nn.Linear(64, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1x1(torch.relu(self.c3x3(x)))
        h = self.c1d(h.flatten(2))
        return self.lin(h.transpose(1, 2))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


def both_ways(config, tmp_path, targets, label: str, **load_kwargs):
    """PEFT model -> ours (from the model and from its directory) -> PEFT directory -> PEFT model."""
    torch.manual_seed(0)
    base = Net()
    pm = peft.get_peft_model(copy.deepcopy(base), config).eval()
    x = torch.randn(2, 64, 4, 4)
    want = pm(x)
    pm.save_pretrained(tmp_path / "peft")
    ours = None
    for source in (pm, tmp_path / "peft"):
        ours = load_peft(copy.deepcopy(base), source, **load_kwargs)
        assert sorted(ours.layers) == sorted(targets)
        ERRORS[label] = max(ERRORS.get(label, 0.0), rel(ours(x), want))
        torch.testing.assert_close(ours(x), want, rtol=RTOL, atol=ATOL)
    save_peft(ours, tmp_path / "ours")
    back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    ERRORS[label] = max(ERRORS[label], rel(back(x), want))
    torch.testing.assert_close(back(x), want, rtol=RTOL, atol=ATOL)
    return pm, ours


CASES = {  # label: (targets, r); channels large enough that PEFT keeps w2 (and with decompose_both w1) low-rank
    "conv2d 3x3": (["c3x3"], 2),
    "conv2d 1x1": (["c1x1"], 3),
    "conv1d k=3": (["c1d"], 2),
    "conv2d 3x3 + 1x1": (["c3x3", "c1x1"], 2),
}


@pytest.mark.parametrize("effective", [False, True])
@pytest.mark.parametrize("decompose_both", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_conv_lokr_both_ways(case, decompose_both, effective, tmp_path):
    targets, r = CASES[case]
    config = peft.LoKrConfig(r=r, alpha=3, target_modules=targets, init_weights=False, decompose_both=decompose_both,
                             use_effective_conv2d=effective)
    pm, ours = both_ways(config, tmp_path, targets, f"{case}{' effective' if effective else ''}"
                         f"{' decompose_both' if decompose_both else ''}")
    spec = ours.spec
    assert spec.identify() == "lokr"
    modules = [pm.base_model.model.get_submodule(t) for t in targets]
    assert all(("default" in m.lokr_w1_a) == decompose_both for m in modules)
    assert all("default" in m.lokr_w2_a for m in modules)
    kernels = any(any(k > 1 for k in s[2:]) for s in spec.target_shapes.values())
    if effective and kernels:  # t2 kept as the Tucker core of w2: the kernel's own fold, identity kernel modes
        assert spec.config["fold"] == "shape" and spec.groups[0].factors[1].structure == "tucker"
        assert spec.groups[0].factors[1].identity_modes == tuple(range(2, len(spec.targets[0].shape)))
        if not decompose_both and len(targets) == 1:  # same parameters as PEFT's layer, none added
            assert spec.num_params == sum(p.numel() for n, p in pm.named_parameters() if "lokr_" in n)
        assert any("default" in m.lokr_t2 for m in modules)
    else:
        assert spec.config["fold"] == "natural"
    assert spec.config["factorization"] == "peft-conv"


def test_full_w2_and_rank_alpha_patterns(tmp_path):
    """w2 full (b, d, kh, kw) on one Conv2d (r = 8 >= max(b, d) / 2), low-rank on the other, per-layer r and alpha."""
    config = peft.LoKrConfig(r=2, alpha=3, target_modules=["c3x3", "c1x1"], init_weights=False,
                             rank_pattern={"c3x3": 8}, alpha_pattern={"c3x3": 5})
    pm, _ = both_ways(config, tmp_path, ["c3x3", "c1x1"], "conv2d full w2, rank/alpha_pattern")
    assert "default" in pm.base_model.model.c3x3.lokr_w2 and "default" in pm.base_model.model.c1x1.lokr_w2_a


def test_linear_and_conv_mixed_with_effective_cores(tmp_path):
    """Linear + effective Conv2d: read on the (out, in*k) fold, t2 folded into an exact rank-r pair;
    mixed="error" refuses instead."""
    config = peft.LoKrConfig(r=2, alpha=3, target_modules=["c3x3", "lin"], init_weights=False, use_effective_conv2d=True)
    pm, ours = both_ways(config, tmp_path, ["c3x3", "lin"], "linear + conv2d effective")
    assert ours.spec.config["fold"] == "natural"
    with pytest.raises(SpecError, match="lokr_t2"):
        from_peft(pm, mixed="error")


def test_conv1d_full_w2_refused_both_ways(tmp_path):
    """PEFT's Conv1d LoKr with a full w2: torch.kron(w1 2-D, w2 3-D) is not a Kronecker product over
    (out, in, k): refused on reading, and save_peft refuses a spec whose Conv1d PEFT would hold full."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(8, 6, 3))
    pm = peft.get_peft_model(copy.deepcopy(net), peft.LoKrConfig(r=2, target_modules=["0"], init_weights=False))
    assert "default" in pm.base_model.model[0].lokr_w2
    with pytest.raises(SpecError, match="not a Kronecker product"):
        load_peft(copy.deepcopy(net), pm)
    ours = inject(copy.deepcopy(net), targets=["0"], spec=dict(splits=2, exact_splits=True, factorization="peft-conv",
                                                              structure=["dense", "lora"], rank=4))
    with pytest.raises(SpecError, match="not a Kronecker product"):
        save_peft(ours, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_rank_dropout_warns_and_is_not_carried():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(16, 32, 3))
    pm = peft.get_peft_model(copy.deepcopy(net), peft.LoKrConfig(r=2, target_modules=["0"], rank_dropout=0.1,
                                                                  init_weights=False, use_effective_conv2d=True))
    with pytest.warns(UserWarning, match="rank_dropout"):
        ours = load_peft(copy.deepcopy(net), pm)
    assert ours.dropout == 0.0


@settings(max_examples=30, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["conv1d", "conv2d"]), cin=st.integers(1, 24), cout=st.integers(1, 24),
       k=st.sampled_from([1, 2, 3]), r=st.integers(1, 4), both=st.booleans(), effective=st.booleans(),
       factor=st.sampled_from([-1, 2, 3, 4]))
def test_delta_equals_peft_on_every_backend(kind, cin, cout, k, r, both, effective, factor):
    """spec.contract(params) == PEFT's get_delta_weight for random conv shapes and settings, on
    numpy (float64) and torch (float32), and jax where installed; or a SpecError naming the
    Conv1d full-w2 case, the only one refused."""
    torch.manual_seed(cin * 100 + cout)
    layer = nn.Conv1d(cin, cout, k) if kind == "conv1d" else nn.Conv2d(cin, cout, k)
    pm = peft.get_peft_model(nn.Sequential(layer), peft.LoKrConfig(r=r, alpha=2.5, target_modules=["0"], init_weights=False,
                                                                   decompose_both=both, use_effective_conv2d=effective,
                                                                   decompose_factor=factor))
    module = pm.base_model.model[0]
    want = module.get_delta_weight("default").detach()
    if kind == "conv1d" and "default" in module.lokr_w2:
        with pytest.raises(SpecError, match="not a Kronecker product"):
            from_peft(pm)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec, params = from_peft(pm)
    assert spec.identify() == "lokr"
    torch.testing.assert_close(spec.contract(params)["0"], want, rtol=1e-5, atol=1e-6)
    numpy_params = {n: v.double().numpy() for n, v in params.items()}
    np.testing.assert_allclose(spec.contract(numpy_params)["0"], want.double().numpy(), rtol=1e-5, atol=1e-6)
    try:
        import jax.numpy as jnp
    except ImportError:
        return
    got = spec.contract({n: jnp.asarray(v) for n, v in params.items()})["0"]
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module", autouse=True)
def report_largest_errors(pytestconfig: pytest.Config):
    """Not a test: after this module's tests, print the largest errors they recorded (each test
    asserts its own bound); shown with ``pytest -s``."""
    yield
    if ERRORS and pytestconfig.getoption("capture") == "no":
        print("\nLoKr on convolutions, largest relative forward error vs PEFT (read from model, read from directory, "
              "written back):")
        for label, err in sorted(ERRORS.items()):
            print(f"  {label}: {err:.1e}")
