"""The ``superlora-tn`` command line (also ``python -m superlora_tn``).

Commands: ``demo``, ``plan``, ``budget``, ``draw``, ``verify``, ``bench``, ``experiment``.
Bad flags or files print a message and exit 2 (argparse's convention, also for ``SpecError``);
a missing optional part (reductions, benchmarks, experiments) exits 3.

>>> main(["plan", "--preset", "vit-b16", "--rank", "4", "--json"])  # doctest: +ELLIPSIS
{...
0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .console import echo, print_table
from .errors import SpecError

__all__ = ["build_parser", "load_spec", "load_targets", "main"]

EXIT_BAD_INPUT = 2
EXIT_MISSING_PART = 3
CHECKPOINT_DEFAULT = r"(^|\.)(q_proj|v_proj|query|value|c_attn|q|v)\.weight$"


class MissingPart(Exception):
    """An optional part of the project (another module) is not installed in this build."""


# ----------------------------------------------------------------------------- output
# Tables and text fit the terminal width (100 columns when piped): superlora_tn.console.


def _si(x: float) -> str:
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:g}"


# ----------------------------------------------------------------------------- targets and specs
def _add_target_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("targets (one source)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--preset", help="model shapes shipped with the package: vit-b16, gpt2-medium, llama-7b, llama-70b")
    src.add_argument("--targets-file", metavar="PATH", help='JSON/YAML: {"name": [out, in], ...} or [[name, shape], ...]')
    src.add_argument("--checkpoint", metavar="PATH", help="a .safetensors file or folder (header only, no weights loaded)")
    g.add_argument("--targets", metavar="REGEX", default=None,
                   help="select weights whose name matches REGEX ('all' for every weight; default: attention query and value)")
    g.add_argument("--conv1d", action="store_true", help="checkpoint 2-D weights are stored (in, out) (GPT-2 Conv1D): transpose them")


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("spec (flags override --spec)")
    g.add_argument("--spec", metavar="PATH", help="a saved spec (spec.to_dict() JSON) or a JSON/YAML mapping of SuperLoRA arguments")
    g.add_argument("--groups", help="weight | kind (same name up to layer index) | an integer G | JSON list of lists of names")
    g.add_argument("--fold", help="natural | balanced | stack | a shape such as 64x96x128")
    g.add_argument("--order", type=int, help="M, modes of the fold")
    g.add_argument("--splits", type=int, help="K, Kronecker factors per group")
    g.add_argument("--rank", help="r, a per-mode tuple '8,8,4', or JSON (a list per factor)")
    g.add_argument("--structure", help="tucker | cp | lora | dense, or one per factor: dense,lora")
    g.add_argument("--projection", help="none | fastfood:RATIO | gaussian:RATIO")
    g.add_argument("--shuffle", type=int, metavar="SEED", help="shuffle dW_all with this seed")
    g.add_argument("--alpha", type=float, help="dW = alpha / r * generated")
    g.add_argument("--seed", type=int, help="seed of init and projections")
    g.add_argument("--identity-modes", metavar="M,..", help="tucker modes using the identity factor (LoTR: 0)")
    g.add_argument("--exact-splits", action="store_true", default=None, help="split modes by exact divisors only")
    g.add_argument("--split-factor", type=int, help="PEFT/LyCORIS decompose_factor for K=2")


def load_targets(args: argparse.Namespace, default_preset: str | None = None) -> dict[str, tuple[int, ...]]:
    """Targets from --preset / --targets-file / --checkpoint, filtered by --targets."""
    from . import presets

    if args.checkpoint:
        found = presets.checkpoint_targets(args.checkpoint, conv1d=args.conv1d)
        return presets.select_targets(found, args.targets or CHECKPOINT_DEFAULT)
    if args.targets_file:
        return presets.select_targets(presets.file_targets(args.targets_file), args.targets)
    name = args.preset or default_preset
    if name is None:
        raise SpecError("targets", None, "one of --preset, --targets-file or --checkpoint")
    return presets.preset_targets(name, args.targets or "default")


def _parse_rank(text: str) -> Any:
    text = text.strip()
    try:
        if text.startswith("["):
            return [tuple(r) if isinstance(r, list) else r for r in json.loads(text)]
        parts = [int(x) for x in text.split(",")]
    except (ValueError, TypeError):
        raise SpecError("--rank", text, "an integer, a tuple like 8,8,4, or a JSON list per factor like [24, [8, 8]]") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def _parse_groups(text: str, targets: dict[str, Any]) -> Any:
    from .presets import group_by_kind

    if text in ("weight",):
        return text
    if text == "kind":
        return group_by_kind(targets)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise SpecError("--groups", text, "weight, kind, an integer or a JSON list of lists of target names") from None


def _parse_projection(text: str) -> Any:
    from .projection import Fastfood, Gaussian

    if text.lower() in ("none", "identity"):
        return None
    kind, _, ratio = text.partition(":")
    kinds = {"fastfood": Fastfood, "gaussian": Gaussian}
    try:
        return kinds[kind.lower()](float(ratio or 1.0))
    except (KeyError, ValueError):
        raise SpecError("--projection", text, "none, fastfood:RATIO or gaussian:RATIO with RATIO in (0, 1]") from None


def _spec_file(path: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(SuperLoRA kwargs, targets or None) from a saved spec or an argument mapping."""
    from .facade import SuperLoRA
    from .presets import _read_structured
    from .serialize import projection_from_dict

    data = _read_structured(Path(path))
    if not isinstance(data, dict):
        raise SpecError("--spec", path, "a JSON/YAML mapping")
    if data.get("format") == "superlora_tn.spec":
        spec = SuperLoRA.from_dict(data)
        return dict(spec.config), {t.name: t.shape for t in spec.targets}
    config = data.get("config", data)
    if not isinstance(config, dict):
        raise SpecError("--spec", path, 'a mapping of SuperLoRA arguments (its "config" is not one)')
    kwargs = dict(config)
    targets = kwargs.pop("targets", None)
    if isinstance(kwargs.get("projection"), dict):
        kwargs["projection"] = projection_from_dict(kwargs["projection"])
    elif isinstance(kwargs.get("projection"), str):
        kwargs["projection"] = _parse_projection(kwargs["projection"])
    if isinstance(kwargs.get("rank"), str):
        kwargs["rank"] = _parse_rank(kwargs["rank"])
    if isinstance(kwargs.get("fold"), list):
        kwargs["fold"] = tuple(kwargs["fold"])
    return kwargs, (dict(targets) if isinstance(targets, dict) else None)


def load_spec(args: argparse.Namespace, default_preset: str | None = "vit-b16") -> Any:
    """The SuperLoRA described by the target and spec flags (flags win over --spec)."""
    from .facade import SuperLoRA
    from .spec import SPEC_ARGUMENTS
    from .structures import DEFAULT_STRUCTURES

    kwargs: dict[str, Any] = {}
    file_targets = None
    if args.spec:
        kwargs, file_targets = _spec_file(args.spec)
    has_source = args.preset or args.targets_file or args.checkpoint
    targets = load_targets(args, default_preset) if has_source or file_targets is None else file_targets
    if args.groups is not None:
        kwargs["groups"] = _parse_groups(args.groups, targets)
    elif kwargs.get("groups") == "kind":
        kwargs["groups"] = _parse_groups("kind", targets)
    if args.fold is not None:
        kwargs["fold"] = _parse_fold(args.fold)
    for name in ("order", "splits", "shuffle", "alpha", "seed", "exact_splits", "split_factor"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.rank is not None:
        kwargs["rank"] = _parse_rank(args.rank)
    if args.structure is not None:
        kwargs["structure"] = args.structure.split(",") if "," in args.structure else args.structure
    elif file_targets is not None and kwargs.get("structure") in DEFAULT_STRUCTURES \
            and (args.fold is not None or args.order is not None or targets is not file_targets):
        # a saved spec stores its resolved default structure (lora for 2 modes, tucker above):
        # a new fold, order or set of targets chooses again, as when the spec was first built
        kwargs["structure"] = None
    if args.projection is not None:
        kwargs["projection"] = _parse_projection(args.projection)
    if args.identity_modes is not None:
        kwargs["identity_modes"] = _parse_ints("--identity-modes", args.identity_modes)
    unknown = sorted(k for k in kwargs if k not in SPEC_ARGUMENTS)
    if unknown:
        raise SpecError("--spec", unknown, "SuperLoRA arguments only")
    return SuperLoRA(targets, **kwargs)


def _parse_ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.replace("x", ",").split(",") if m.strip())
    except ValueError:
        raise SpecError(flag, text, "comma-separated integers such as 0 or 16,16,16") from None


def _parse_fold(text: str) -> str | tuple[int, ...]:
    if text in ("natural", "balanced", "stack"):
        return text
    shape = _parse_ints("--fold", text)
    if not shape:
        raise SpecError("--fold", text, "natural, balanced, stack, or a shape such as 64x64x64")
    return shape


# ----------------------------------------------------------------------------- commands
def print_groups(spec: Any, rows: list[dict[str, Any]] | None = None, per_group: bool = False) -> None:
    """A spec's headline and its per-group table, identical groups merged unless ``per_group``."""
    from .summary import collapse_rows, group_label, group_rows

    rows = group_rows(spec) if rows is None else rows
    proj = spec.config.projection
    extra = (f", scale {spec.scale_factor:g}" if spec.scale_factor != 1 else "") + (
        f", projection {type(proj).__name__}({proj.ratio:g})" if proj else "") + (
        f", shuffle seed {spec.config.shuffle}" if spec.config.shuffle is not None else "")
    echo(f"SuperLoRA over {len(spec.targets)} targets ({_si(spec.num_entries)} entries): {len(spec.groups)} groups, "
         f"{spec.num_params:,} params, compression {spec.compression:.1f}x{extra}")
    cols = ["group", "fold", "splits", "structure", "equation", "params", "compr.", "FLOPs", "largest"]
    groups = [([r["group"]], r) for r in rows] if per_group else collapse_rows(rows)
    table = [[group_label(ids), r["fold"], r["splits"], r["structure"], r["equation"], f"{r['params']:,}",
              f"{r['compression']:.1f}x", _si(r["flops"]), _si(r["largest_intermediate"])] for ids, r in groups]
    title = "per group" + ("" if per_group else ", identical groups merged (--per-group for all)")
    print_table(title, cols, table,
                right=("params", "compr.", "FLOPs", "largest"))


def cmd_plan(args: argparse.Namespace) -> int:
    from .summary import group_rows

    start = time.perf_counter()
    spec = load_spec(args, default_preset=None if (args.spec and not args.preset) else "vit-b16")
    rows = group_rows(spec)
    totals = {
        "targets": len(spec.targets), "entries": spec.num_entries, "groups": len(spec.groups), "params": spec.num_params,
        "compression": spec.compression, "flops": sum(r["flops"] for r in rows),
        "largest_intermediate": max(r["largest_intermediate"] for r in rows), "scale": spec.scale_factor,
        "batches": len(spec.plan().batches),
    }
    if args.json:
        print(json.dumps({"spec": spec.to_dict(), "totals": totals, "groups": rows}, indent=1))
        return 0
    print_groups(spec, rows, per_group=args.per_group)
    echo(f"plan: {totals['batches']} batched contraction(s), {_si(totals['flops'])} FLOPs in all, "
         f"largest intermediate {_si(totals['largest_intermediate'])} entries ({time.perf_counter() - start:.2f} s)")
    return 0


def _float_list(text: str, name: str, kind: type = float) -> list[Any]:
    try:
        return [None if x.strip().lower() == "none" else kind(x) for x in text.split(",")]
    except ValueError:
        raise SpecError(name, text, f"a comma-separated list of {kind.__name__}s") from None


def cmd_budget(args: argparse.Namespace) -> int:
    from .budget import best_per_variant, fit_budget

    if args.top < 1:
        raise SpecError("--top", args.top, "a positive number of settings to list")
    targets = load_targets(args, "vit-b16")
    grid: dict[str, Any] = {
        "orders": _float_list(args.orders, "--orders", int),
        "splits": _float_list(args.splits, "--splits", int),
        "ratios": _float_list(args.ratios, "--ratios"),
    }
    if args.group_counts is not None:
        grid["group_counts"] = _float_list(args.group_counts, "--group-counts", int) if args.group_counts else []
    every = fit_budget(targets, args.budget, top=None, rank_by=args.rank_by, **grid)
    if not every:
        raise SpecError("--budget", args.budget, "a budget at least one setting fits (raise it, or allow projections with --ratios)")
    found, variants = every[: args.top], best_per_variant(every)
    if args.json:
        print(json.dumps({"budget": int(args.budget), "targets": len(targets), "rank_by": args.rank_by,
                          "candidates": [c.as_dict() for c in found],
                          "best_per_variant": {k: c.as_dict() for k, c in variants.items()}}, indent=1))
        return 0
    order = {"params": "closest to the budget (fewest unused parameters), then highest rank, then fewest groups",
             "rank": "highest rank, then closest to the budget, then fewest groups",
             "fewest-groups": "fewest groups, then closest to the budget, then highest rank"}[args.rank_by]
    echo(f"budget {int(args.budget):,} params over {len(targets)} targets; ranked by {order} (--rank-by)")
    _budget_table("settings that fit", found, targets, args.budget, numbered=True)
    if variants:
        _budget_table("best setting of each variant", list(variants.values()), targets, args.budget, numbered=False)
        echo("measured: the experiments' family of the setting (docs/experiments.md). Arguments: paste into "
             "SuperLoRA(targets, ...). As --spec JSON for plan and draw (save one to a file, pass --spec FILE):")
        for i, c in enumerate(found):
            echo(f"{i + 1}: {json.dumps(c.spec_arguments())}")
    else:
        print("nothing fits: raise the budget or allow projections (--ratios)")
    return 0


def _budget_table(title: str, found: Sequence[Any], targets: dict[str, Any], budget: float, numbered: bool) -> None:
    """Candidates as a table: params, share of the budget, variant, groups, experiments' family, arguments."""
    from .budget import measured_family

    cols = ["#"] * numbered + ["params", "of budget", "variant", "groups", "measured", "SuperLoRA arguments"]
    rows = [[i + 1] * numbered + [f"{c.params:,}", f"{100 * c.params / budget:.1f}%", c.variant, c.num_groups,
                                  (measured_family(c, targets) or "-").removeprefix("SuperLoRA "), c.python()] for i, c in enumerate(found)]
    print_table(title, cols, rows, right=("#", "params", "of budget", "groups"))


def cmd_draw(args: argparse.Namespace) -> int:
    spec = load_spec(args)
    if args.grouping:
        from .draw_groups import draw_grouping

        path = Path(args.output or "superlora_grouping.png")
        if not path.parent.is_dir():  # the command line writes where it is told, it creates no directories
            raise SpecError("--output", str(path), "a file in an existing directory")
        draw_grouping(spec, path)
        echo(f"wrote {path} ({path.stat().st_size} bytes): {len(spec.targets)} targets in {len(spec.groups)} groups")
        return 0
    path = Path(args.output or f"superlora_group{args.group}.png")
    if not path.parent.is_dir():  # the command line writes where it is told, it creates no directories
        raise SpecError("--output", str(path), "a file in an existing directory")
    spec.draw(args.group, path)
    echo(f"wrote {path} ({path.stat().st_size} bytes): group {args.group} of {len(spec.groups)}, {spec.groups[args.group].equation}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .backends import available_backends
    from .console import progress_steps
    from .demo import DEMO_SPECS, run_demo

    backends = args.backends.split(",") if args.backends else available_backends()
    steps = DEMO_SPECS * (len(backends) + ("numpy" not in backends))
    start = time.perf_counter()
    started = [0]
    with progress_steps("demo", steps) as advance:
        def before(name: str, backend: str) -> None:  # the step before this one is done
            advance(min(started[0], 1), label=f"{name[:24]}: {backend}")
            started[0] += 1

        results = run_demo(echo, backends, show=print_groups, before=before)
        advance(1, label="demo")
    rows = [[name, backend, r["dtype"], f"{r['max_abs_diff']:.2e}", f"{r['seconds']:.2f}"]
            for name, per in results.items() for backend, r in per.items()]
    print_table("agreement with NumPy float64 (seeded non-zero parameters)", ["spec", "backend", "dtype", "max abs diff", "s"],
                rows, right=("max abs diff", "s"))
    echo(f"demo done in {time.perf_counter() - start:.1f} s")
    return 0


VERIFY_TARGETS = {f"layer{i}.{w}": (16, 12) for i in range(3) for w in ("q", "v")}


def cmd_verify(args: argparse.Namespace) -> int:
    from .backends import available_backends

    try:
        from . import variants
        from .reductions import check_reduction
    except ImportError as exc:
        raise MissingPart(f"verify needs superlora_tn.reductions and superlora_tn.variants, not in this build ({exc})") from None
    backends = args.backends.split(",") if args.backends else available_backends()
    rows, failed = [], 0
    for name in variants.VARIANTS:
        spec = variants.build(name, VERIFY_TARGETS, rank=3)
        for backend in backends:
            dtype = _verify_dtype(backend)
            report = check_reduction(spec, name, backend=backend, dtype=dtype, seed=args.seed)
            tol = args.tol if dtype == "float64" else 1e-5
            ok = report.relative_error <= tol
            failed += not ok
            rows.append([name, backend, dtype, f"{report.max_error:.2e}", f"{report.relative_error:.2e}", f"{tol:.0e}",
                         "pass" if ok else "FAIL"])
    echo(f"contracted network vs. independent textbook formula; {len(VERIFY_TARGETS)} targets (16, 12), rank 3, "
          "seeded non-zero parameters; JAX in float32 unless jax_enable_x64")
    print_table("reduction identities",
                ["reduction", "backend", "dtype", "max error", "relative", "tolerance", "result"], rows,
                right=("max error", "relative", "tolerance"))
    print(f"{len(rows) - failed}/{len(rows)} passed")
    return 1 if failed else 0


def _verify_dtype(backend: str) -> str:
    """float64, except JAX without jax_enable_x64 (float32 there)."""
    if backend == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from .bench.__main__ import main as bench_main
    except ImportError as exc:
        raise MissingPart(f"bench needs superlora_tn.bench and its peers ({exc})") from None
    return int(bench_main(list(args.bench_args)) or 0)


def cmd_experiment(args: argparse.Namespace) -> int:
    try:
        from .experiments import cli_experiment
    except ImportError as exc:
        raise MissingPart(f"experiment needs superlora_tn.experiments and its extra ({exc})") from None
    if args.jobs is not None and args.jobs < 1:
        raise SpecError("--jobs", args.jobs, "a positive number of worker processes (or leave it out: one per CPU)")
    return cli_experiment(args.name, quick=args.quick, out_dir=args.out_dir, jobs=args.jobs, threads=args.threads)


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="superlora-tn", description="SuperLoRA as one tensor-network algebra: plan, budget, draw, verify")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('superlora_tn').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="ViT-B/16 q,v: summaries of LoRA, LoKr, grouped Tucker+fastfood, LoTR; backend agreement")
    p.add_argument("--backends", help="comma-separated (default: every installed backend)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("plan", help="per-group table of a spec: fold, splits, structure, equation, params, FLOPs")
    _add_target_args(p)
    _add_spec_args(p)
    p.add_argument("--per-group", action="store_true", help="one row per group (default merges identical groups)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("budget", help="settings whose parameter count fits a budget, ranked (symbolic, nothing allocated)")
    _add_target_args(p)
    p.add_argument("--budget", type=float, required=True, help="parameter budget, e.g. 1e4")
    p.add_argument("--top", type=int, default=20, help="how many settings to list (default 20)")
    p.add_argument("--rank-by", choices=("params", "rank", "fewest-groups"), default="params",
                   help="order: closest to the budget (default), highest rank, or fewest groups first")
    p.add_argument("--orders", default="2,3,4", help="orders M to try (default 2,3,4)")
    p.add_argument("--splits", default="1,2,3", help="Kronecker splits K to try (default 1,2,3)")
    p.add_argument("--ratios", default="none,0.5,0.25,0.1", help="projection ratios to try, 'none' = no projection")
    p.add_argument("--group-counts", default=None, help="integer group counts G to try (default 1, 2, 4, ... < #targets; '' for none)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_budget)

    p = sub.add_parser("draw", help="render a group's tensor network to PNG/SVG")
    _add_target_args(p)
    _add_spec_args(p)
    p.add_argument("--group", type=int, default=0, help="group index (default 0)")
    p.add_argument("--grouping", action="store_true",
                   help="draw how the groups cover the targets (grouping, folding, projection, shuffle) instead")
    p.add_argument("-o", "--output", help="file .png/.svg/.pdf (default superlora_group<N>.png)")
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("verify", help="every reduction identity on every installed backend: pass/fail table")
    p.add_argument("--backends", help="comma-separated (default: every installed backend)")
    p.add_argument("--tol", type=float, default=1e-10, help="largest relative error that passes in float64 (float32: 1e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random non-zero parameters")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="run the benchmark suite (superlora_tn.bench); extra arguments such as "
                       "--threads N are passed on")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for benchmarks")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("experiment", help="run an experiment: digits, diffusion or minilm")
    p.add_argument("name", choices=["digits", "diffusion", "minilm"])
    p.add_argument("--quick", action="store_true", help="a small, fast version")
    p.add_argument("--out-dir", default="results", help="where results go (default results/)")
    p.add_argument("--jobs", type=int, default=None, help="runs side by side, one process each (default: one per CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch (and BLAS) threads of the run and of each worker (default: 1 with several jobs)")
    p.set_defaults(func=cmd_experiment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a check failed, 2 bad input, 3 missing part)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # every flag after it is the benchmark runner's (argparse's REMAINDER refuses a leading --flag)
        args = argparse.Namespace(command="bench", func=cmd_bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SpecError as exc:
        print(f"superlora-tn {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MissingPart as exc:
        print(f"superlora-tn {args.command}: {exc}", file=sys.stderr)
        return EXIT_MISSING_PART
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a path that cannot be read or written: bad input, one line
        print(f"superlora-tn {args.command}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: one line, not a traceback (SUPERLORA_TN_DEBUG=1 shows it)
        if os.environ.get("SUPERLORA_TN_DEBUG"):
            raise
        print(f"superlora-tn {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(please report it; SUPERLORA_TN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
