"""Image generation: a tiny denoising diffusion model on 8x8 digits, adapted from 0-4 to 5-9.

The denoiser is an MLP over the 64 pixels (scaled to [-1, 1]) with a sinusoidal time embedding
and residual blocks; the adapted matrices are the square hidden ``Linear`` of every block. It is
pretrained (epsilon prediction, DDPM, linear beta schedule) on the digits 0-4 and adapted, with
the backbone frozen, on the digits 5-9. Quality of an adapted model:

* ``target_share``: share of generated samples that a fixed digit classifier (an MLP trained
  once on all real digits, ~97% held-out accuracy) puts in 5-9 (higher is better),
* ``fd``: the Fréchet distance between generated samples and the real 5-9 digits in the
  classifier's penultimate features (lower is better),
* ``loss``: the held-out denoising loss (epsilon MSE) on the test images of 5-9, at fixed time
  steps and noise (lower is better).

The 5-9 images are split (stratified by digit, fixed seed) into fit (60%), validation (20%) and
test (20%): adaptation trains on the fit images; the tuning protocol selects learning rates by
the held-out denoising loss on the validation images; ``loss`` is measured on the test images.

Samples are drawn by ancestral DDPM sampling from fixed noise (seeded by the run's seed).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._adapter import AdaptedModel, DeltaGenerator, linear_targets
from ._common import Task, batches, seed_everything, train_loop
from .methods import Method, TargetInfo, by_name, resolve_spec


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer time steps."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ResBlock(nn.Module):
    """x + lin(silu(norm(x) + time))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.time = nn.Linear(dim, dim)
        self.lin = nn.Linear(dim, dim)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        return x + self.lin(F.silu(self.norm(x) + self.time(temb)))


class Denoiser(nn.Module):
    """MLP epsilon-predictor for flattened 8x8 images."""

    def __init__(self, pixels: int = 64, dim: int = 256, depth: int = 4) -> None:
        super().__init__()
        self.dim = dim
        self.inp = nn.Linear(pixels, dim)
        self.temb = nn.Sequential(nn.Linear(dim, dim), nn.SiLU())
        self.blocks = nn.ModuleList(ResBlock(dim) for _ in range(depth))
        self.out_norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, pixels)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.temb(time_embedding(t, self.dim))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(F.silu(self.out_norm(h)))


class Schedule:
    """Linear-beta DDPM schedule with T steps."""

    def __init__(self, steps: int = 100, beta_start: float = 1e-4, beta_end: float = 0.05) -> None:
        self.steps = steps
        self.betas = torch.linspace(beta_start, beta_end, steps)
        self.alphas = 1.0 - self.betas
        self.abar = torch.cumprod(self.alphas, dim=0)

    def noisy(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Sample x_t given x_0."""
        a = self.abar[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    @torch.no_grad()
    def sample(self, model: nn.Module, n: int, seed: int, pixels: int = 64) -> Tensor:
        """Ancestral sampling from fixed seeded noise; returns images clipped to [-1, 1]."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(n, pixels, generator=gen)
        for i in reversed(range(self.steps)):
            t = torch.full((n,), i, dtype=torch.long)
            eps = model(x, t)
            a, ab, b = self.alphas[i], self.abar[i], self.betas[i]
            x = (x - b / (1 - ab).sqrt() * eps) / a.sqrt()
            if i > 0:
                x = x + b.sqrt() * torch.randn(n, pixels, generator=gen)
        return x.clamp(-1, 1)


class DigitClassifier(nn.Module):
    """The fixed judge: 64 -> 128 -> 64 -> 10 MLP; ``features`` is the 64-d penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def train_classifier(x: Tensor, y: Tensor, steps: int = 1500, seed: int = 0) -> tuple[DigitClassifier, float]:
    """Train the judge on 80% of the real digits; return it and its held-out accuracy."""
    gen = seed_everything(seed)
    perm = torch.randperm(len(y), generator=gen)
    cut = int(0.8 * len(y))
    tr, te = perm[:cut], perm[cut:]
    clf = DigitClassifier()
    wrapped = AdaptedModel(clf, trainable=[n for n, _ in clf.named_parameters()])
    xt, yt = x[tr], y[tr]

    def loss(idx: Tensor) -> Tensor:
        noisy = xt[idx] + 0.1 * torch.randn_like(xt[idx])  # robust to sampler noise
        return F.cross_entropy(wrapped(noisy), yt[idx])

    train_loop(wrapped, loss, batches(len(tr), 128, gen), steps, 3e-3, weight_decay=1e-4,
               label="diffusion: training the judge")
    clf.load_state_dict({k: v.detach() for k, v in wrapped.overrides().items()})
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        acc = float((clf(x[te]).argmax(-1) == y[te]).float().mean())
    return clf, acc


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # near-singular covariances (e.g. collapsed samples)
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@dataclass
class DiffusionBudget:
    """Training budgets (steps of a fixed batch), learning rates, and sampling sizes."""

    pretrain_steps: int = 3000
    pretrain_lr: float = 2e-3
    steps: int = 1000
    batch_size: int = 256
    samples: int = 500
    diffusion_steps: int = 100
    lr: dict[str, float] = field(
        default_factory=lambda: {"bias": 1e-2, "full": 1e-3, "lora": 1e-2, "lora_ref": 1e-2,
                                 "spec": 1e-2, "subspace": 1e-1}
    )


QUICK_BUDGET = DiffusionBudget(pretrain_steps=1500, steps=300, samples=300)


def load_data(seed: int = 0) -> dict[str, Tensor]:
    """All digits in [-1, 1] (N, 64), labels, the 0-4 / 5-9 images, and the 5-9 images split
    into ``fit`` / ``val`` / ``test`` (60/20/20, stratified by digit, ``random_state=seed``)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.from_numpy(data.data.astype(np.float32) / 8.0 - 1.0)
    y = torch.from_numpy(data.target).long()
    target, labels = x[y >= 5], y[y >= 5].numpy()
    rest, test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed)
    fit, val = train_test_split(rest, test_size=0.25, stratify=labels[rest], random_state=seed)
    return {"x": x, "y": y, "source": x[y < 5], "target": target,
            "fit": target[torch.from_numpy(fit)], "val": target[torch.from_numpy(val)],
            "test": target[torch.from_numpy(test)]}


def diffusion_loss(model: nn.Module, sched: Schedule, x0: Tensor) -> Tensor:
    """Epsilon-prediction MSE at uniformly drawn time steps."""
    t = torch.randint(0, sched.steps, (len(x0),))
    noise = torch.randn_like(x0)
    return F.mse_loss(model(sched.noisy(x0, t, noise), t), noise)


@torch.no_grad()
def heldout_loss(model: nn.Module, sched: Schedule, x0: Tensor, repeats: int = 8, seed: int = 0) -> float:
    """Epsilon-prediction MSE on held-out images at fixed (seeded) time steps and noise: the same
    draws for every model, so differences are the models'."""
    gen = torch.Generator().manual_seed(seed)
    x = x0.repeat(repeats, 1)
    t = torch.randint(0, sched.steps, (len(x),), generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    return float(F.mse_loss(model(sched.noisy(x, t, noise), t), noise))


def pretrain(x: Tensor, sched: Schedule, budget: DiffusionBudget, seed: int = 0) -> Denoiser:
    """Train the denoiser on the source digits."""
    gen = seed_everything(seed)
    net = Denoiser()
    wrapped = AdaptedModel(net, trainable=[n for n, _ in net.named_parameters()])
    train_loop(wrapped, lambda idx: diffusion_loss(wrapped, sched, x[idx]),
               batches(len(x), budget.batch_size, gen), budget.pretrain_steps, budget.pretrain_lr,
               label="diffusion: pretraining the denoiser")
    net.load_state_dict({k: v.detach() for k, v in wrapped.overrides().items()})
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def target_info(net: Denoiser) -> TargetInfo:
    """The square hidden Linear of every residual block."""
    names = [f"blocks.{i}.lin" for i in range(len(net.blocks))]
    return TargetInfo(linear_targets(net, names), layers=len(names), roles={"hidden": names})


def save_sample_grid(samples: dict[str, Tensor], path: Path, per_row: int = 8) -> None:
    """One panel of generated digits per method, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samples), figsize=(3.2 * len(samples), 3.9))
    axes = np.atleast_1d(axes)
    for ax, (title, imgs) in zip(axes, samples.items()):
        imgs = imgs[: per_row * per_row].view(-1, 8, 8).numpy()
        grid = np.ones((per_row * 9 - 1, per_row * 9 - 1)) * -1
        for k, img in enumerate(imgs):
            r, c = divmod(k, per_row)
            grid[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = img
        ax.imshow(grid, cmap="gray_r", vmin=-1, vmax=1)
        lines = [part for line in title.split("\n") for part in textwrap.wrap(line, 28)]
        ax.set_title("\n".join(lines), fontsize=8)  # each line inside its panel's width
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.2)  # titles clear of the edge
    plt.close(fig)


def make_task(quick: bool = False, budget: DiffusionBudget | None = None) -> Task:
    """Train the judge, pretrain the denoiser on 0-4, return the 5-9 adaptation task."""
    budget = budget or (QUICK_BUDGET if quick else DiffusionBudget())
    data = load_data()
    sched = Schedule(budget.diffusion_steps)
    start = time.perf_counter()
    clf, clf_acc = train_classifier(data["x"], data["y"])
    net = pretrain(data["source"], sched, budget)
    pretrain_s = time.perf_counter() - start
    info = target_info(net)
    bias_names = [n for n, _ in net.named_parameters() if n.endswith(".bias")]
    with torch.no_grad():
        real_feats = clf.features(data["target"]).numpy()

    def build(method: Method, generator: DeltaGenerator | None, seed: int) -> AdaptedModel:
        return AdaptedModel(net, generator, trainable=bias_names if method.kind == "bias" else [])

    def fit(model: AdaptedModel, method: Method, seed: int) -> None:
        gen = torch.Generator().manual_seed(1000 + seed)
        torch.manual_seed(2000 + seed)
        x = data["fit"]
        train_loop(model, lambda idx: diffusion_loss(model, sched, x[idx]),
                   batches(len(x), budget.batch_size, gen), method.steps or budget.steps, task.lr(method))

    def evaluate(model: AdaptedModel, seed: int) -> dict[str, float]:
        with model.frozen_deltas():
            gen = sched.sample(model, budget.samples, seed=10_000 + seed)
            loss = heldout_loss(model, sched, data["test"])
        with torch.no_grad():
            pred = clf(gen).argmax(-1)
            feats = clf.features(gen).numpy()
        return {"target_share": float((pred >= 5).float().mean()),
                "fd": frechet_distance(feats, real_feats), "loss": loss}

    def validate(model: AdaptedModel, seed: int) -> dict[str, float]:
        with model.frozen_deltas():
            return {"loss": heldout_loss(model, sched, data["val"])}

    with torch.no_grad():
        src = sched.sample(net, budget.samples, seed=10_000)
        src_share = float((clf(src).argmax(-1) < 5).float().mean())

    def keep(method: Method, seed: int, model: AdaptedModel) -> tuple[int, Tensor]:
        """64 samples from fixed noise (the figure shows those of the first seed)."""
        with model.frozen_deltas():
            return model.adapter_params(), sched.sample(model, 64, seed=7)

    def is_lora(method: Method) -> bool:
        from ..facade import SuperLoRA

        return SuperLoRA(info.targets, **resolve_spec(method.spec, info)).identify() == "lora"

    def finish(out: Path, artifacts: dict[tuple[str, int], tuple[int, Tensor]]) -> str:
        """Figure (first seed, same noise): no adaptation; the SuperLoRA setting closest to 30
        parameters and the random subspace of its size; the smallest SuperLoRA setting that
        visibly moves the samples (at least half of its 64 panel samples judged 5-9; not one that
        is plain LoRA, such as 2-D G=L r=1 here, since LoRA has its own panel) and the random
        subspace of its size; LoRA's smallest; full fine-tuning (those that were run)."""
        if not artifacts:
            return ""
        first = min(seed for _, seed in artifacts)
        shown = {name: (by_name(name), *art) for (name, seed), art in artifacts.items() if seed == first}
        by_family = lambda pred: [k for k, (m, _, _) in shown.items() if pred(m)]  # noqa: E731
        with torch.no_grad():
            moved = {k: float((clf(v[2]).argmax(-1) >= 5).float().mean()) for k, v in shown.items()}
        picks = by_family(lambda m: m.kind == "zero-shot")
        supers = sorted(by_family(lambda m: m.family.startswith("SuperLoRA") and not is_lora(m)), key=lambda k: shown[k][1])
        subspaces = {shown[k][1]: k for k in by_family(lambda m: m.kind == "subspace")}
        loras = by_family(lambda m: m.family == "LoRA")
        for pick in ([min(supers, key=lambda k: abs(shown[k][1] - 30))] if supers else []) + \
                [k for k in supers if moved[k] >= 0.5][:1]:
            if pick not in picks:
                picks.append(pick)
                if shown[pick][1] in subspaces:
                    picks.append(subspaces[shown[pick][1]])
        if loras:
            picks.append(min(loras, key=lambda k: shown[k][1]))
        picks += by_family(lambda m: m.kind == "full")
        if not picks:
            return ""
        panels = {f"{k}\n({shown[k][1]:,} params; {100 * moved[k]:.0f}% judged 5-9)": shown[k][2] for k in picks}
        save_sample_grid(panels, out / "diffusion_samples.png")
        return f"## Samples (seed {first}, same noise for every panel)\n\n![samples](diffusion_samples.png)\n"

    notes: dict[str, object] = {
        "judge classifier held-out accuracy": round(clf_acc, 4),
        "pretrained model: share of samples judged 0-4": round(src_share, 4),
        "pretraining + judge wall time (s)": round(pretrain_s, 1),
        "denoiser parameters": sum(p.numel() for p in net.parameters()),
        "adapted matrices": f"{len(info.targets)} x {next(iter(info.targets.values()))}",
        "adaptation budget": f"{budget.steps} steps of batch {budget.batch_size}, AdamW + cosine; lr {budget.lr}",
        "pretraining budget": f"{budget.pretrain_steps} steps, lr {budget.pretrain_lr}",
        "sampling": f"{budget.samples} samples, {budget.diffusion_steps} DDPM steps",
        "5-9 split": f"{len(data['fit'])} fit / {len(data['val'])} validation / {len(data['test'])} test "
        "(FD against all real 5-9 digits)",
    }
    task = Task(
        name="diffusion", primary="target_share",
        higher_is_better={"target_share": True, "fd": False, "loss": False}, info=info,
        build=build, fit=fit, evaluate=evaluate, notes=notes, skip_kinds=("head",),
        keep=keep, finish=finish, validate=validate, default_lr=dict(budget.lr),
        subspace_dims=(33, 1024, 8192, 65536, 262144), tune_metric="loss",
    )
    return task
