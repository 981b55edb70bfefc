"""The package's imports, read from its source: no circle, and nothing imported against the layers.

docs/design.md §4 draws the layers. Each module of ``superlora_tn`` is placed in one; a module
imports only from its own layer or the layers below it. Imports under ``if TYPE_CHECKING:``
(annotations only) are not imports at run time and are not counted.

- Module-level imports (run when the module loads) form no circle and never go up a layer.
- Imports inside a function run when it is called. Those that go up a layer are few: a
  projection converting its constants on the backend it runs on, and the torch model's methods
  reaching the modules that implement them; they are listed in ``LAZY_UPWARD``, and the list
  must not grow (a new entry is a design decision: write it in docs/design.md and here).
- The value (spec.py) imports nothing above it at all: the class users construct,
  ``superlora_tn.SuperLoRA`` (superlora_tn/facade.py), is its subclass with the operations
  (``spec.contract``, ``spec.init``, ...).

>>> imports = read_imports()
>>> "superlora_tn.network" in imports["superlora_tn.spec"].module_level
True
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "superlora_tn"

# Bottom to top. The network IR and the plan sit below the spec value: a spec builds its groups'
# networks at construction and plans them from shapes alone (both are part of the value), so
# spec.py imports network.py and plan.py, never the reverse.
LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("errors", "validate", "targets", "layout", "config", "folds", "factorize", "reference", "structures", "limits",
             "hadamard", "kernels", "fastfood_cpu", "buffers", "console", "presets"),
    "network": ("network",),
    "plan": ("plan", "lowering", "rotation"),
    "value": ("projection", "arguments", "spec", "serialize"),
    "backends": ("backends", "backends.base", "backends.numpy_backend", "backends.torch_backend",
                 "backends.jax_backend", "backends.torch_cpu"),
    "execution": ("init", "runner", "execute", "factored", "slices"),
    "facade": ("facade", "registry", "identify", "native", "conversions", "reductions", "variants", "summary", "draw",
               "draw_groups", "budget", "demo", "plumbing", "__init__"),
    "integrations": ("torch", "jax", "interop", "cli", "__main__", "experiments", "bench"),
}
ORDER = list(LAYERS)

# Function-level imports that go up a layer (importer -> imported). Must not grow.
LAZY_UPWARD: frozenset[tuple[str, str]] = frozenset({
    # Projection.apply converts its NumPy constants on the backend it is applied on
    ("projection", "backends"),
})

# Within integrations, torch/ has its own order: the operations AdaptedModel's methods delegate to
# (adapters, io, hf) sit below model.py and take the model as an argument; loading (which injects)
# sits above it.
TORCH_ORDER = (("torch.targets", "torch.defaults", "torch.state", "torch.sharding", "torch.memory"),
               ("torch.build", "torch.layers"), ("torch.adapters", "torch.io", "torch.hf"), ("torch.model",),
               ("torch.loading",), ("torch",))
TORCH_LAZY_UPWARD: frozenset[tuple[str, str]] = frozenset()


@dataclass
class Imports:
    module_level: set[str] = field(default_factory=set)
    in_functions: set[str] = field(default_factory=set)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, known: set[str]) -> list[str]:
    """The superlora_tn modules an import statement loads (``from . import x`` -> the module x)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = importer.split(".")[: len(importer.split(".")) - (node.level - (1 if is_package else 0))]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]


def read_imports() -> dict[str, Imports]:
    """Module -> the superlora_tn modules it imports at module level and inside functions."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    result: dict[str, Imports] = {}
    for name, path in paths.items():
        found = Imports()
        is_package = path.name == "__init__.py"

        def visit(body: list[ast.stmt], at_module_level: bool, name: str = name, found: Imports = found,
                  is_package: bool = is_package) -> None:
            for node in body:
                if isinstance(node, ast.Import | ast.ImportFrom):
                    into = found.module_level if at_module_level else found.in_functions
                    into.update(t for t in _targets(node, name, is_package, known) if t.startswith("superlora_tn"))
                elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    visit(node.orelse, at_module_level)  # the if-branch is for annotations only
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    visit(node.body, False)
                else:  # class bodies, if/try/with/for blocks run where they stand
                    for block in ("body", "orelse", "finalbody"):
                        if isinstance(getattr(node, block, None), list):
                            visit(getattr(node, block), at_module_level)
                    for handler in getattr(node, "handlers", []):
                        visit(handler.body, at_module_level)

        visit(ast.parse(path.read_text()).body, True)
        found.module_level.discard(name)
        found.in_functions.discard(name)
        result[name] = found
    return result


def layer_of(module: str) -> int:
    """Index in ORDER of the layer holding ``module`` (a package's layer holds its submodules)."""
    short = module.removeprefix("superlora_tn").removeprefix(".") or "__init__"
    best = None
    for i, layer in enumerate(ORDER):
        for entry in LAYERS[layer]:
            if short == entry or short.startswith(entry + "."):
                if best is None or len(entry) > best[1]:
                    best = (i, len(entry))
    assert best is not None, f"{module} is in no layer: place it in tests/test_layers.py LAYERS and docs/design.md §4"
    return best[0]


def torch_rank(module: str) -> int | None:
    short = module.removeprefix("superlora_tn.")
    for i, group in enumerate(TORCH_ORDER):
        if short in group:
            return i
    return None


def short(module: str) -> str:
    return module.removeprefix("superlora_tn").removeprefix(".") or "__init__"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


IMPORTS = read_imports()


def test_every_module_has_a_layer():
    for module in IMPORTS:
        layer_of(module)


def test_no_circle_among_module_level_imports():
    graph = {m: {t for t in i.module_level if t in IMPORTS} for m, i in IMPORTS.items()}
    assert circles(graph) == []


def test_module_level_imports_follow_the_layers():
    wrong = sorted(f"{short(m)} ({ORDER[layer_of(m)]}) imports {short(t)} ({ORDER[layer_of(t)]})"
                   for m, i in IMPORTS.items() for t in i.module_level if layer_of(t) > layer_of(m))
    assert wrong == []


def test_torch_modules_import_one_way_at_module_level():
    wrong = [(short(m), short(t)) for m, i in IMPORTS.items() for t in i.module_level
             if torch_rank(m) is not None and torch_rank(t) is not None and torch_rank(t) > torch_rank(m)]
    assert wrong == []


def test_function_level_imports_against_the_layers_are_the_listed_ones():
    upward = {(short(m), short(t)) for m, i in IMPORTS.items() for t in i.in_functions if layer_of(t) > layer_of(m)}
    assert upward == set(LAZY_UPWARD), "update LAZY_UPWARD (and docs/design.md §4) only by removing entries"
    torch_upward = {(short(m), short(t)) for m, i in IMPORTS.items() for t in i.in_functions
                    if torch_rank(m) is not None and torch_rank(t) is not None and torch_rank(t) > torch_rank(m)}
    assert torch_upward == set(TORCH_LAZY_UPWARD)


def test_the_value_imports_nothing_above_it():
    """spec.py (the value) reaches no layer above its own, neither at load time nor inside a method:
    the operations are the facade's subclass (superlora_tn/facade.py), which the package exports."""
    value = ORDER.index("value")
    for module in ("superlora_tn.spec", "superlora_tn.arguments", "superlora_tn.serialize", "superlora_tn.config"):
        found = IMPORTS[module]
        assert {short(t) for t in found.module_level | found.in_functions if layer_of(t) > value} == set(), module
    assert "superlora_tn.spec" in IMPORTS["superlora_tn.facade"].module_level
    assert "superlora_tn.facade" in IMPORTS["superlora_tn"].module_level
    assert "superlora_tn.plan" in IMPORTS["superlora_tn.spec"].module_level


def test_the_reader_sees_lazy_and_type_checking_imports_apart():
    facade = IMPORTS["superlora_tn.facade"]
    assert "superlora_tn.reductions" in facade.in_functions and "superlora_tn.reductions" not in facade.module_level
    assert "superlora_tn.execute" in facade.module_level
    assert "superlora_tn.spec" not in IMPORTS["superlora_tn.execute"].module_level  # TYPE_CHECKING only
    assert "superlora_tn.torch.layers" in IMPORTS["superlora_tn.torch.model"].module_level
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
