"""Issue 12, torch: nothing lost, nothing silently wrong (atomic save, validate-before-touching
load, no stacked adapters, no unhooked targets, the merge state travels with state_dict)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402

from superlora_tn import SpecError  # noqa: E402
from superlora_tn.torch import inject, load  # noqa: E402
from superlora_tn.torch.io import CONFIG_NAME, WEIGHTS_NAME  # noqa: E402

torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.b(torch.tanh(self.a(x)))))


def net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def adapted(seed: int = 0, **spec):
    return inject(net(seed), ["a", "b"], spec=dict(rank=2, **spec), zero_init=False, modules_to_save=["head"])


X = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------- 1. a failed save loses nothing
def test_numpy_rank_saves_and_a_failing_save_keeps_the_old_adapter(tmp_path, monkeypatch):
    first, d = adapted(), tmp_path / "adapter"
    first.save(d)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    second = inject(net(1), ["a"], spec=dict(rank=np.int64(4), alpha=np.float32(2.0)))  # once: json.dumps fails on int64
    second.save(tmp_path / "other")  # JSON-ready now
    assert json.loads((tmp_path / "other" / CONFIG_NAME).read_text())["spec"]["config"]["rank"] == 4

    import superlora_tn.torch.io as io

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io, "_config_digest", broken)  # fails after the tensors are written
    with pytest.raises(RuntimeError, match="disk full"):
        second.save(d)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # nothing replaced, no temporary left
    monkeypatch.undo()
    again = load(net(0), d)
    torch.testing.assert_close(again(X), first(X), rtol=0, atol=0)


def test_save_into_an_unwritable_path_is_a_spec_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SpecError) as info:
        adapted().save(blocker / "sub")
    assert info.value.field == "path"


# ----------------------------------------------------------------- 2. a refused load touches nothing
def _edit_tensors(path, edit):
    tensors = load_file(str(path / WEIGHTS_NAME))
    edit(tensors)
    save_file(tensors, str(path / WEIGHTS_NAME))
    cfg = json.loads((path / CONFIG_NAME).read_text())
    import superlora_tn.torch.io as io

    cfg["files"][WEIGHTS_NAME] = {"sha256": io._sha256(path / WEIGHTS_NAME), "bytes": (path / WEIGHTS_NAME).stat().st_size}
    cfg["config_sha256"] = io._config_digest(cfg)
    (path / CONFIG_NAME).write_text(json.dumps(cfg))


def _edit_spec(path, **config):
    cfg = json.loads((path / CONFIG_NAME).read_text())
    cfg["spec"]["config"].update(config)
    import superlora_tn.torch.io as io

    cfg["config_sha256"] = io._config_digest(cfg)  # a consistent edit: only the tensor check can catch it
    (path / CONFIG_NAME).write_text(json.dumps(cfg))


BAD_FILES = {
    "edited spec (rank)": lambda p: _edit_spec(p, rank=3),
    "huge rank (would allocate)": lambda p: _edit_spec(p, rank=10**6),
    "missing tensor": lambda p: _edit_tensors(p, lambda t: t.pop("adapter.g0_k0_A0")),
    "extra tensor": lambda p: _edit_tensors(p, lambda t: t.update({"adapter.zz": torch.zeros(2)})),
    "wrong shape": lambda p: _edit_tensors(p, lambda t: t.update({"adapter.g0_k0_A0": torch.zeros(8, 3)})),
    "mixed dtypes": lambda p: _edit_tensors(p, lambda t: t.update({"adapter.g0_k0_A0": t["adapter.g0_k0_A0"].double()})),
    "bad head key": lambda p: _edit_tensors(p, lambda t: t.update({"heads.nothead.weight": torch.zeros(2)})),
    "missing head tensor": lambda p: _edit_tensors(p, lambda t: t.pop("heads.head.bias")),
    "foreign key": lambda p: _edit_tensors(p, lambda t: t.update({"other": torch.zeros(2)})),
}


@pytest.mark.parametrize("edit", list(BAD_FILES))
def test_refused_load_leaves_the_model_untouched_and_loadable(tmp_path, edit):
    adapted().save(tmp_path / "good")
    adapted().save(tmp_path / "bad")
    BAD_FILES[edit](tmp_path / "bad")
    model = net(0)
    before = state(model)
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    with pytest.raises(SpecError):
        load(model, tmp_path / "bad")
    after = state(model)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert not any(m._forward_hooks or m._forward_pre_hooks or "forward" in m.__dict__ for m in model.modules())
    load(model, tmp_path / "good")  # still loadable


@pytest.mark.parametrize("edit", ["missing head tensor", "wrong shape", "mixed dtypes"])
def test_refused_load_adapter_copies_nothing(tmp_path, edit):
    adapted(seed=1).save(tmp_path)
    BAD_FILES[edit](tmp_path)
    target = adapted(seed=0)
    before = state(target)
    with pytest.raises(SpecError):
        target.load_adapter(tmp_path)
    after = state(target)
    assert all(torch.equal(after[k], before[k]) for k in before if k != "_extra_state")


@pytest.mark.parametrize("field,value", [("alpha", 7.0), ("seed", 5), ("shuffle", 3)])
def test_edited_json_fields_are_refused(tmp_path, field, value):
    adapted().save(tmp_path)
    cfg = json.loads((tmp_path / CONFIG_NAME).read_text())
    cfg["spec"]["config"][field] = value
    (tmp_path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match="config_sha256"):
        load(net(0), tmp_path)


def test_edited_target_order_is_refused(tmp_path):
    adapted().save(tmp_path)
    cfg = json.loads((tmp_path / CONFIG_NAME).read_text())
    cfg["spec"]["targets"].reverse()
    (tmp_path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match="config_sha256"):
        load(net(0), tmp_path)


# ----------------------------------------------------------------- 4. never stack a second adapter
def test_second_inject_is_refused_and_changes_nothing():
    model = net(0)
    first = inject(model, ["a"], spec=dict(rank=2), zero_init=False)
    y = first(X)
    for again in (lambda: inject(model, ["a"], spec=dict(rank=2)),          # the re-run notebook cell
                  lambda: inject(first, ["a"], spec=dict(rank=2)),          # the adapted wrapper itself
                  lambda: inject(nn.Sequential(model), ["0.b"], spec=dict(rank=2)),  # a model containing it
                  lambda: inject(nn.Sequential(model.a), ["0"], spec=dict(rank=2))):  # a submodule with a hook
        with pytest.raises(SpecError) as info:
            again()
        assert info.value.field == "model"
    torch.testing.assert_close(first(X), y, rtol=0, atol=0)
    first.unload()
    inject(model, ["a"], spec=dict(rank=2))  # after unload it is a plain model again


# ----------------------------------------------------------------- 5. no unhooked targets
class WithMHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.attn(x, x, x)[0])


def test_multihead_attention_out_proj_is_refused():
    model = WithMHA()
    with pytest.raises(SpecError) as info:
        inject(model, ["attn.out_proj"], spec=dict(rank=2))
    assert info.value.field == "targets" and "MultiheadAttention" in str(info.value)
    with pytest.raises(SpecError):
        inject(model, r".*", spec=dict(rank=2))
    assert not model.out._forward_hooks and "forward" not in model.out.__dict__  # nothing was attached
    inject(model, ["out"], spec=dict(rank=2))


# ----------------------------------------------------------------- 10. merged state dicts
def test_merged_state_dict_into_unmerged_model_is_refused():
    a = adapted(seed=0)
    a.merge()
    merged_state = a.state_dict()
    b = adapted(seed=3)
    before = state(b)
    with pytest.raises(SpecError, match="merge"):
        b.load_state_dict(merged_state)
    assert all(torch.equal(v, before[k]) for k, v in state(b).items())
    b.merge()
    with pytest.raises(SpecError, match="unmerge"):  # a merged model's W already holds its old dW
        b.load_state_dict(merged_state)
    b.unmerge()
    a.unmerge()
    b.load_state_dict(a.state_dict())  # both unmerged: the adapter (the trainable state) is copied exactly
    assert all(torch.equal(b.adapter[k], p) for k, p in a.adapter.items())


def test_state_dict_stays_saveable_with_safetensors(tmp_path):
    sd = {k: v.contiguous() for k, v in adapted().state_dict().items()}
    save_file(sd, str(tmp_path / "sd.safetensors"))
    b = adapted(seed=2)
    b.load_state_dict(load_file(str(tmp_path / "sd.safetensors")))


def test_unknown_spec_keys_list_only_real_arguments():
    with pytest.raises(SpecError) as info:
        inject(net(0), ["a"], spec=dict(unknown=1, rnak=2))
    assert info.value.field == "spec" and info.value.value == ["rnak", "unknown"]
    assert "unknown" not in info.value.expected and "rank" in info.value.expected
