"""Parity with LyCORIS itself (``lycoris-lora``): files written by LyCORIS read by us, files written
by us read by LyCORIS, and import -> export round trips bit-exact.

What is compared: dW as LyCORIS's forward applies it (``get_weight(shape) * scalar``; NOT its
``get_diff_weight``, which multiplies by alpha / r twice) and the layer outputs, on random non-zero
weights, float32. Shapes: the Linear and Conv2d (3x3) layers of a Stable Diffusion UNet block.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import superlora_tn as slt
from superlora_tn import variants
from superlora_tn.errors import SpecError
from superlora_tn.factorize import lycoris_factorization, peft_factorization

torch = pytest.importorskip("torch")
lycoris = pytest.importorskip("lycoris")
nn = torch.nn
from lycoris.functional import factorization as ly_factorization  # noqa: E402
from lycoris.logging import logger as ly_logger  # noqa: E402
from lycoris.modules.locon import LoConModule  # noqa: E402
from lycoris.modules.loha import LohaModule  # noqa: E402
from lycoris.modules.lokr import LokrModule  # noqa: E402

from superlora_tn.interop.lycoris import from_lycoris, lycoris_module_name, to_lycoris  # noqa: E402

ly_logger.setLevel(logging.ERROR)
MODULES = {"lokr": LokrModule, "loha": LohaModule, "locon": LoConModule}
TOL = 2e-6  # relative to the largest |dW| entry (float32 round-off)
FWD_TOL = 4e-6  # relative to the largest output entry


class Block(nn.Module):
    """The adapted layers of a Stable Diffusion UNet block, at their real sizes (nested names)."""

    def __init__(self, big: bool = False) -> None:
        super().__init__()
        if big:  # only the largest conv of the block (14.7M weights)
            self.resnet = nn.ModuleDict({"conv2": nn.Conv2d(1280, 1280, 3, padding=1)})
            return
        self.attn = nn.ModuleDict({"to_q": nn.Linear(320, 320, bias=False), "to_out": nn.Linear(640, 640)})
        self.ff = nn.ModuleDict({"proj": nn.Linear(640, 1280)})
        self.resnet = nn.ModuleDict({"conv1": nn.Conv2d(320, 640, 3, padding=1), "conv_skip": nn.Conv2d(320, 640, 1)})

    def forward(self, xs: dict) -> dict:
        modules = dict(self.named_modules())
        return {name: modules[name](x) for name, x in xs.items()}


def _inputs(model: nn.Module, names: list[str], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    xs = {}
    for n in names:
        m = modules[n]
        shape = (3, m.in_features) if isinstance(m, nn.Linear) else (1, m.in_channels, 4, 4)
        xs[n] = torch.randn(shape, generator=g)
    return xs


def _randomize(module: nn.Module, seed: int) -> None:
    """Random non-zero values for every LyCORIS parameter (scalar too: a use_scalar snapshot)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == "scalar":
                p.copy_(torch.tensor(0.5) + torch.rand((), generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / math.sqrt(max(1, p.shape[-1]))))


def _lycoris_model(base: nn.Module, names: list[str], algo: str, prefix: str = "lycoris", seed: int = 0, **kw):
    """A copy of ``base`` with LyCORIS modules on ``names``: (model, modules, state dict as LyCORIS saves it)."""
    model = copy.deepcopy(base)
    modules = dict(model.named_modules())
    lyco, state = {}, {}
    for i, n in enumerate(names):
        mod = MODULES[algo](lycoris_module_name(n, prefix), modules[n], 1.0, **kw)
        mod.apply_to()
        _randomize(mod, seed + i)
        lyco[n] = mod
        for k, v in mod.state_dict().items():
            state[f"{mod.lora_name}.{k}"] = v.detach().clone()
    return model, lyco, state


def _forward_dw(mod: nn.Module) -> torch.Tensor:
    """dW as LyCORIS's forward applies it (rebuild mode): get_weight * scalar."""
    if isinstance(mod, LoConModule):  # its make_weight already carries the scalar
        return (mod.make_weight() * mod.scale).detach()
    return (mod.get_weight(mod.shape) * mod.scalar).detach()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max())


ERRORS: dict[str, float] = {}


def _record(key: str, err: float) -> None:
    ERRORS[key] = max(ERRORS.get(key, 0.0), err)


# ------------------------------------------------------------------ factorization conventions
def test_factorization_equals_lycoris_and_differs_from_peft_where_documented():
    dims = [*range(1, 260), 320, 640, 768, 960, 1024, 1280, 2560, 3072, 4096]
    factors = [-1, *range(1, 41), 64, 128]
    differs = 0
    for n in dims:
        for f in factors:
            assert lycoris_factorization(n, f) == ly_factorization(n, f), (n, f)
            differs += peft_factorization(n, f) != ly_factorization(n, f)
    assert peft_factorization(320, 32) == (32, 10) and lycoris_factorization(320, 32) == (10, 32)
    assert differs > 0


@pytest.mark.parametrize("unbalanced", [False, True])
@pytest.mark.parametrize("shape", [(640, 320), (1280, 640, 3, 3), (320, 640, 1, 1)])
@pytest.mark.parametrize("factor", [-1, 8, 32])
def test_spec_splits_equal_lycoris_module_shapes(shape, factor, unbalanced):
    layer = nn.Linear(shape[1], shape[0]) if len(shape) == 2 else nn.Conv2d(shape[1], shape[0], shape[2])
    mod = LokrModule("m", layer, 1.0, lora_dim=2, alpha=1, factor=factor, unbalanced_factorization=unbalanced, decompose_both=True)
    convention = "lycoris-unbalanced" if unbalanced else "lycoris"
    spec = variants.lokr({"m": shape}, 2, factor, True, factorization=convention)
    f1, f2 = spec.groups[0].factors
    w1 = (mod.lokr_w1_a.shape[0], mod.lokr_w1_b.shape[1]) if hasattr(mod, "lokr_w1_a") else tuple(mod.lokr_w1.shape)
    assert f1.shape == w1
    assert f2.shape[0] == (mod.lokr_w2_a.shape[0] if hasattr(mod, "lokr_w2_a") else mod.lokr_w2.shape[0])


# ------------------------------------------------------------------ LyCORIS writes, we read
SETTINGS = [
    ("locon", dict(lora_dim=4, alpha=2)),
    ("locon", dict(lora_dim=8, alpha=16, rs_lora=True, use_scalar=True)),
    ("lokr", dict(lora_dim=4, alpha=2)),
    ("lokr", dict(lora_dim=4, alpha=1, factor=8, decompose_both=True)),
    ("lokr", dict(lora_dim=6, alpha=3, factor=16, use_scalar=True)),
    ("lokr", dict(lora_dim=4, alpha=4, factor=32, unbalanced_factorization=True)),
    ("lokr", dict(lora_dim=8, alpha=4, rs_lora=True, decompose_both=True, factor=4)),
    ("lokr", dict(lora_dim=4, alpha=2, full_matrix=True)),
    ("loha", dict(lora_dim=4, alpha=2)),
    ("loha", dict(lora_dim=8, alpha=1, use_scalar=True)),
]
LINEAR = ["attn.to_q", "attn.to_out", "ff.proj"]
CONV = ["resnet.conv1", "resnet.conv_skip"]


@pytest.fixture(scope="module")
def block() -> nn.Module:
    torch.manual_seed(0)
    return Block()


def _check_read(block, names, algo, kw, tmp_path=None, prefix="lycoris", label=""):
    model, lyco, state = _lycoris_model(block, names, algo, prefix=prefix, **kw)
    source = state
    if tmp_path is not None:  # through a file, as LyCORIS's save_weights writes it
        from safetensors.torch import save_file

        source = tmp_path / "lyco.safetensors"
        save_file(state, str(source))
    spec, params = from_lycoris(source)
    deltas = spec.contract(params)
    for n in names:
        want = _forward_dw(lyco[n])
        got = deltas[lycoris_module_name(n, prefix)].reshape(want.shape)
        err = _rel(got, want)
        _record(f"{algo} dW, LyCORIS file -> superlora_tn{label}", err)
        assert err < TOL, (n, err)
    # with the model: an AdaptedModel whose layer outputs equal LyCORIS's forward
    adapted = from_lycoris(source, copy.deepcopy(block), factored=False)
    xs = _inputs(block, names)
    want_out, got_out = model(xs), adapted(xs)
    for n in names:
        err = _rel(got_out[n], want_out[n])
        _record(f"{algo} forward, LyCORIS file -> superlora_tn{label}", err)
        assert err < FWD_TOL, (n, err)
    # import -> export: the same file, bit for bit (LoKr with two full matrices: alpha as LyCORIS reloads it, 1)
    back = to_lycoris(spec, params, prefix=prefix)
    assert set(back) == set(state)
    for k, v in state.items():
        if kw.get("full_matrix") and k.endswith(".alpha"):
            assert float(back[k]) == 1.0
            continue
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    return spec


@pytest.mark.parametrize(("algo", "kw"), SETTINGS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(SETTINGS)])
def test_lycoris_file_read_by_us(block, algo, kw, tmp_path):
    spec = _check_read(block, LINEAR, algo, kw, tmp_path if algo == "lokr" else None)
    assert spec.identify() == {"locon": "lora"}.get(algo, algo)
    _check_read(block, CONV, algo, kw)


@pytest.mark.parametrize("algo", ["lokr", "loha", "locon"])
def test_tucker_conv_files_read_by_us(block, algo):
    kw = dict(lora_dim=4, alpha=2, use_tucker=True)
    spec = _check_read(block, ["resnet.conv1"], algo, kw, label=" (Tucker)")
    assert spec.config["fold"] == "shape" and spec.identify() == {"locon": "lora"}.get(algo, algo)
    f = spec.groups[0].factors[-1]
    assert f.structure == "tucker" and f.identity_modes == (2, 3)


def test_tucker_locon_next_to_plain_layers_becomes_exact_pairs(block):
    """use_tucker gives lora_mid only to kernels > 1: the 1x1 conv stays plain, and the 3x3 layer's
    (up, mid, down) becomes the exact pair (up, mid x_2 down), rank r, in one LoRA spec."""
    _, lyco, state = _lycoris_model(block, CONV, "locon", lora_dim=4, alpha=2, use_tucker=True)
    assert "lycoris_resnet_conv1.lora_mid.weight" in state and "lycoris_resnet_conv_skip.lora_mid.weight" not in state
    spec, params = from_lycoris(state)
    assert spec.identify() == "lora" and spec.config["structure"] == "lora"
    deltas = spec.contract(params)
    for n in CONV:
        want = _forward_dw(lyco[n])
        err = _rel(deltas[lycoris_module_name(n)].reshape(want.shape), want)
        _record("locon dW, LyCORIS file -> superlora_tn (Tucker among plain)", err)
        assert err < TOL
    with pytest.raises(SpecError, match="mixed"):
        from_lycoris(state, mixed="error")


def test_kohya_names_map_to_model_modules(block):
    _, _, state = _lycoris_model(block, ["attn.to_q", "resnet.conv1"], "lokr", prefix="lora_unet", lora_dim=4, alpha=2)
    assert "lora_unet_attn_to_q.lokr_w1" in state
    adapted = from_lycoris(state, copy.deepcopy(block))
    assert list(adapted.spec.target_shapes) == ["attn.to_q", "resnet.conv1"]
    assert adapted.spec.target_shapes["resnet.conv1"] == (640, 320, 3, 3)
    back = to_lycoris(adapted, prefix="lora_unet")
    assert all(torch.equal(back[k], v) for k, v in state.items())
    # a kohya file also holds text-encoder modules: with the UNet, pick the UNet's
    state["lora_te_encoder_q.lokr_w1"] = torch.ones(2, 2)
    state["lora_te_encoder_q.lokr_w2"] = torch.ones(2, 2)
    with pytest.raises(SpecError, match="modules="):
        from_lycoris(state, copy.deepcopy(block))
    unet = from_lycoris(state, copy.deepcopy(block), modules=["attn.to_q", "lora_unet_resnet_conv1"])
    assert list(unet.spec.target_shapes) == ["attn.to_q", "resnet.conv1"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_file_round_trips_in_its_dtype(block, dtype):
    """LyCORIS's save_weights(dtype=...) casts every tensor, alpha included; the round trip keeps it."""
    _, _, state = _lycoris_model(block, ["attn.to_q", "resnet.conv1"], "lokr", lora_dim=4, alpha=2, decompose_both=True, factor=8)
    state = {k: v.to(getattr(torch, dtype)) for k, v in state.items()}
    spec, params = from_lycoris(state)
    assert {p.dtype for p in params.values()} == {getattr(torch, dtype)}
    back = to_lycoris(spec, params)
    assert all(back[k].dtype == v.dtype and torch.equal(back[k], v) for k, v in state.items())


def test_big_sd_conv_parity():
    torch.manual_seed(1)
    base = Block(big=True)
    for algo in ("lokr", "loha"):
        _check_read(base, ["resnet.conv2"], algo, dict(lora_dim=8, alpha=4), label=" (1280x1280x3x3)")


@pytest.mark.parametrize(("algo", "name", "kw"), [
    ("lokr", "ff.proj", dict(lora_dim=4, alpha=2, factor=16)),
    ("lokr", "resnet.conv1", dict(lora_dim=4, alpha=2, use_tucker=True, decompose_both=True, factor=4)),
    ("loha", "attn.to_out", dict(lora_dim=4, alpha=2)),
    ("locon", "resnet.conv1", dict(lora_dim=4, alpha=8)),
])
def test_gradients_equal_lycoris(block, algo, name, kw):
    """One training step's gradients: ours, laid out as LyCORIS's tensors by to_lycoris (a pure
    re-layout here), equal LyCORIS's own."""
    model, lyco, state = _lycoris_model(block, [name], algo, **kw)
    adapted = from_lycoris(state, copy.deepcopy(block), factored=False)
    xs = _inputs(block, [name], seed=2)
    model(xs)[name].pow(2).sum().backward()
    adapted(xs)[name].pow(2).sum().backward()
    ours = to_lycoris(adapted.spec, {k: p.grad for k, p in adapted.adapter.items()})
    theirs = {f"{lyco[name].lora_name}.{k}": p.grad for k, p in lyco[name].named_parameters()}
    assert set(theirs) <= set(ours)
    for key, grad in theirs.items():
        err = _rel(ours[key], grad)
        _record(f"{algo} gradients, LyCORIS vs superlora_tn", err)
        assert err < 4 * TOL, (key, err)


# ------------------------------------------------------------------ we write, LyCORIS reads
def _ours(spec: slt.SuperLoRA, seed: int = 3) -> dict:
    params = spec.init("torch", zero_init=False, seed=seed)
    return {k: v * 0.3 for k, v in params.items()}


OURS = [
    ("lokr", lambda t: variants.lokr(t, 4, alpha=2.0, factorization="lycoris")),
    ("lokr", lambda t: variants.lokr(t, 3, 8, True, alpha=1.5, factorization="lycoris")),
    ("lokr", lambda t: variants.lokr(t, 64, alpha=8.0, factorization="lycoris")),  # w2 full at this rank: written as the product
    ("loha", lambda t: variants.loha(t, 4, alpha=2.0)),
    ("lora", lambda t: variants.lora(t, 4, alpha=8.0)),
]


@pytest.mark.parametrize(("algo", "make"), OURS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(OURS)])
def test_our_file_read_by_lycoris(block, algo, make, tmp_path):
    from lycoris import create_lycoris_from_weights

    names = ["attn.to_q", "ff.proj", "resnet.conv1", "resnet.conv_skip"]
    modules = dict(block.named_modules())
    spec = make([(n, tuple(modules[n].weight.shape)) for n in names])
    params = _ours(spec)
    path = tmp_path / "ours.safetensors"
    to_lycoris(spec, params, path)
    model = copy.deepcopy(block)
    net, _ = create_lycoris_from_weights(1.0, str(path), model)
    net.apply_to()
    assert len(net.loras) == len(names)
    xs = _inputs(block, names, seed=1)
    got = model(xs)
    deltas = spec.contract(params)
    for n in names:
        m = modules[n]
        W = m.weight + deltas[n].reshape(m.weight.shape)
        want = nn.functional.linear(xs[n], W, m.bias) if isinstance(m, nn.Linear) else m._conv_forward(xs[n], W, m.bias)
        err = _rel(got[n], want)
        _record(f"{algo} forward, superlora_tn file -> LyCORIS", err)
        assert err < FWD_TOL, (n, err)
    # and back: LyCORIS's file read by us is our spec's dW
    back = spec2_deltas = from_lycoris(str(path))
    spec2, params2 = back
    spec2_deltas = spec2.contract(params2)
    for n in names:
        assert _rel(spec2_deltas[lycoris_module_name(n)].reshape(-1), deltas[n].reshape(-1)) < TOL


@pytest.mark.parametrize("case", ["tucker", "unbalanced", "loha-tucker", "locon-tucker"])
def test_our_file_loaded_into_lycoris_modules(block, case, tmp_path):
    """LyCORIS 4.1.3's create_lycoris_from_weights cannot rebuild Tucker LoKr (it reads lora_dim from
    lokr_w2_a) nor unbalanced files: they load into modules built with the training config, as
    ``network.load_weights`` does when training resumes."""
    name = "resnet.conv1"
    shape = (640, 320, 3, 3)
    if case == "tucker":
        spec = variants.lokr({name: shape}, 4, alpha=2.0, factorization="lycoris", conv_tucker=True)
        kw, algo = dict(use_tucker=True), "lokr"
    elif case == "unbalanced":
        spec, kw, algo = variants.lokr({name: shape}, 4, 16, alpha=2.0, factorization="lycoris-unbalanced"), \
            dict(factor=16, unbalanced_factorization=True), "lokr"
    elif case == "loha-tucker":
        spec, kw, algo = variants.loha({name: shape}, 4, alpha=2.0, conv_tucker=True), dict(use_tucker=True), "loha"
    else:
        spec = slt.SuperLoRA({name: shape}, rank=4, alpha=2.0, structure="tucker", fold="shape", identity_modes=(2, 3))
        kw, algo = dict(use_tucker=True), "locon"
    params = _ours(spec)
    state = to_lycoris(spec, params, tmp_path / "ours.safetensors")
    model = copy.deepcopy(block)
    conv = dict(model.named_modules())[name]
    mod = MODULES[algo]("lycoris_resnet_conv1", conv, 1.0, lora_dim=4, alpha=2.0, **kw)
    mod.apply_to()
    mod.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()})
    x = _inputs(block, [name])[name]
    orig = dict(block.named_modules())[name]
    want = orig._conv_forward(x, orig.weight + spec.contract(params)[name], orig.bias)
    err = _rel(conv(x), want)
    _record(f"{algo} forward, superlora_tn file -> LyCORIS ({case})", err)
    assert err < FWD_TOL


# ------------------------------------------------------------------ hypothesis: many LyCORIS settings
SIZES = [4, 6, 8, 12, 16, 20, 24, 30, 32, 40, 48]


@st.composite
def lycoris_settings(draw):
    algo = draw(st.sampled_from(["lokr", "lokr", "loha", "locon"]))
    out, inp = draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES))
    kernel = draw(st.sampled_from([None, 1, 3]))
    kw = dict(lora_dim=draw(st.integers(1, 6)), alpha=draw(st.sampled_from([1.0, 2.5, 4.0, 8.0])))
    if algo == "lokr":
        kw.update(factor=draw(st.sampled_from([-1, 2, 3, 4, 8, 16])), decompose_both=draw(st.booleans()),
                  unbalanced_factorization=draw(st.booleans()), use_scalar=draw(st.booleans()))
    if algo != "locon":
        kw["rs_lora"] = draw(st.booleans())
    if kernel == 3:
        kw["use_tucker"] = draw(st.booleans())
    return algo, out, inp, kernel, kw


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lycoris_settings(), st.integers(0, 2**16))
def test_hypothesis_lycoris_settings_read_and_written_back(setting, seed):
    algo, out, inp, kernel, kw = setting
    layer = nn.Linear(inp, out) if kernel is None else nn.Conv2d(inp, out, kernel)
    mod = MODULES[algo]("lycoris_m", layer, 1.0, **kw)
    mod.apply_to()
    _randomize(mod, seed)
    state = {f"lycoris_m.{k}": v.detach().clone() for k, v in mod.state_dict().items()}
    spec, params = from_lycoris(state)
    full = algo == "lokr" and "lokr_w1" in mod.state_dict() and "lokr_w2" in mod.state_dict()
    want = _forward_dw(mod)
    if full and kw.get("rs_lora"):
        # LyCORIS's training forward uses r / sqrt(r) here, but the file cannot say so: LyCORIS itself
        # reloads it at scale 1 (full_matrix). We follow the file, as every reader of it does.
        want = want / mod.scale
    got = spec.contract(params)["lycoris_m"].reshape(want.shape)
    err = _rel(got, want)
    _record(f"{algo} dW, LyCORIS -> superlora_tn (hypothesis)", err)
    assert err < TOL
    back = to_lycoris(spec, params)
    for k, v in state.items():
        assert torch.equal(back[k], v) or (full and k.endswith(".alpha")), k


# ------------------------------------------------------------------ refused and malformed input
@pytest.mark.parametrize(("leaf", "algorithm"), [("dora_scale", "DoRA"), ("oft_blocks", "OFT"), ("a1.weight", "GLoRA"),
                                                 ("lokr_t1", "Tucker w1"), ("diff", "full")])
def test_other_algorithms_are_refused_by_name(leaf, algorithm):
    state = {"lycoris_m.lora_up.weight": torch.ones(4, 2), "lycoris_m.lora_down.weight": torch.ones(2, 4),
             f"lycoris_m.{leaf}": torch.ones(1)}
    with pytest.raises(SpecError, match=algorithm):
        from_lycoris(state)


def test_bad_input_names_the_field():
    lokr = {"lycoris_m.lokr_w1": torch.ones(2, 2), "lycoris_m.lokr_w2": torch.ones(2, 2)}
    lora = {"lycoris_n.lora_up.weight": torch.ones(4, 2), "lycoris_n.lora_down.weight": torch.ones(2, 4)}
    cases = [
        (lambda: from_lycoris({**lokr, **lora}), "state_dict"),
        (lambda: from_lycoris({"nodot": torch.ones(1)}), "state_dict key"),
        (lambda: from_lycoris(42), "source"),
        (lambda: from_lycoris("/nonexistent.safetensors"), "source"),
        (lambda: from_lycoris(lokr, mixed="maybe"), "mixed"),
        (lambda: from_lycoris(lokr, modules=["nope"]), "modules"),
        (lambda: from_lycoris(lokr, nn.Sequential(nn.Linear(4, 4))), "state_dict module"),
        (lambda: to_lycoris(variants.lonkr({"w": (27, 27)}, 2), {}), "spec"),
        (lambda: to_lycoris(variants.lora({"w": (4, 4)}, 2), None), "params"),
        (lambda: to_lycoris(variants.lora({"w": (4, 4)}, 2), {}, prefix="nope"), "prefix"),
        (lambda: slt.SuperLoRA({"w": (8, 8)}, splits=2, factorization="kohya"), "factorization"),
        (lambda: slt.SuperLoRA({"w": (8, 8)}, splits=3, factorization="lycoris"), "factorization"),
        (lambda: slt.SuperLoRA({"w": (8, 8), "v": (8, 8)}, groups=1, fold="balanced", splits=2, factorization="lycoris"),
         "factorization"),
        (lambda: slt.SuperLoRA({"w": (8, 8)}, fold=(4, 16), splits=2, factorization="lycoris"), "fold"),
        (lambda: slt.SuperLoRA({"w": (8, 8)}, splits=2, compose="outer"), "compose"),
        (lambda: slt.SuperLoRA({"w": (8, 8)}, splits=2, compose="hadamard", split_factor=2), "compose"),
        (lambda: variants.lokr({"w": (8, 8, 3, 3)}, 2, conv_tucker=True), "factorization"),
        (lambda: variants.lokr({"w": (8, 8)}, 2, factorization="lycoris", conv_tucker=True), "targets"),
        (lambda: variants.loha({"w": (8, 8)}, 2, conv_tucker="yes"), "conv_tucker"),
    ]
    for make, field in cases:
        with pytest.raises(SpecError) as info:
            make()
        assert field in info.value.field and "expected" in str(info.value), (field, info.value)


def test_errors_summary():
    """Not a check: prints the largest error per algorithm and direction seen in this module (pytest -s)."""
    for key, err in sorted(ERRORS.items()):
        print(f"{key}: {err:.2e}")
    assert all(np.isfinite(list(ERRORS.values())))
