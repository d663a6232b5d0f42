"""House rules read from the source with ast: no import cycles among harness modules, no import of a higher
layer, no import of another module's private names, modules <= 400 lines.

Every import statement counts, wherever it stands: at module level, inside a function (a lazy import runs
later, but the two modules still depend on each other), or under `if TYPE_CHECKING:` (the names still
travel). Known offenders are listed explicitly, so a new one fails and a fixed one must be struck off.
"""
import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"
MAX_LINES = 400

# Modules over the limit today (lines when listed); split them by concept, then strike them off.
KNOWN_OVER_LIMIT: dict[str, int] = {}
# Import cycles today, each as the sorted modules of one strongly connected component.
KNOWN_CYCLES: list[tuple[str, ...]] = []

# The layers of the harness, bottom to top: an import goes to the same layer or a lower one.
# An entry names a module or a package (all of it); the longest entry that matches decides. Every module
# must be placed, so a new one is put in its layer on purpose.
LAYERS: list[tuple[str, ...]] = [
    ("harness.errors", "harness.atomic"),  # one-line user-facing errors; atomic file writes
    ("harness.claim",),                     # what a claim is: Claim, Check, Tier, registry, expectations, verdicts
    ("harness.curvature", "harness.models", "harness.data", "harness.optim",  # the science: numerical parts
     "harness.losses", "harness.distributed"),
    ("harness.train",),                     #   training loops
    ("harness.experiments",),               #   experiments
    ("harness.run",),                       # running claims (ddp: the torchrun launcher beside the runner)
    ("harness.report",),                    # the HTML report
    ("harness.views", "harness.__main__", "harness"),  # the command line and other views; entry points, API
]
# Imports of a higher layer today, as (importer, imported); move them, then strike them off.
KNOWN_UPWARD: list[tuple[str, str]] = []


# Imports of another module's private names today, as (importer, module, name); make the name public where it
# is shared (or merge the two modules), then strike it off.
KNOWN_PRIVATE: list[tuple[str, str, str]] = []


def modules(root: Path = HARNESS) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package in `root` (named as the folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """(imported module, imported names) for every import statement in a module, lazy ones included.

    `from pkg import sub` imports the submodule `pkg.sub` (no names); `from mod import a, b` imports the
    names a and b of `mod`. Relative imports are resolved against the module's package.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = []
            for alias in node.names:
                if f"{base}.{alias.name}" in mods:
                    yield f"{base}.{alias.name}", ()
                else:
                    names.append(alias.name)
            if names:
                yield base, tuple(names)


def import_graph(root: Path = HARNESS) -> dict[str, set[str]]:
    """module -> the modules of the same package that its imports load (every import, lazy ones included)."""
    mods = modules(root)
    return {name: {target for target, _ in _imports(name, path, mods) if target in mods and target != name}
            for name, path in mods.items()}


def private_imports(root: Path = HARNESS,
                    importers: dict[str, Path] | None = None) -> list[tuple[str, str, str]]:
    """(importer, module, name) for each import of a private name (one leading underscore) of another module.

    Args:
        root: the package whose modules' private names are guarded.
        importers: the modules whose imports are read (default: the package's own), e.g. the claim files.
    """
    mods = modules(root)
    found = set()
    for name, path in (mods if importers is None else importers).items():
        for target, names in _imports(name, path, mods):
            if target == name or not (target == root.name or target.startswith(root.name + ".")):
                continue
            private = [n for n in (*names, target.rpartition(".")[2])
                       if n.startswith("_") and not n.startswith("__")]
            found.update((name, target, n) for n in private)
    return sorted(found)


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def layer_of(module: str, layers: list[tuple[str, ...]]) -> int | None:
    """Index of the layer whose longest entry is `module` or a package above it; None: not placed.

    The root package `harness` matches only itself, so an unplaced module is never in its layer by default.
    """
    found = [(len(entry), i) for i, layer in enumerate(layers) for entry in layer
             if module == entry or (entry != "harness" and module.startswith(entry + "."))]
    return max(found)[1] if found else None


def upward_imports(graph: dict[str, set[str]], layers: list[tuple[str, ...]]) -> list[tuple[str, str]]:
    """(importer, imported) for each import of a module in a higher layer than the importer's, sorted."""
    return sorted((m, d) for m, deps in graph.items() for d in deps
                  if layer_of(d, layers) is not None and layer_of(m, layers) is not None
                  and layer_of(d, layers) > layer_of(m, layers))


def test_structure_layer_check_finds_an_upward_import():
    layers = [("pkg.low",), ("pkg.high", "pkg.low.driver")]
    graph = {"pkg.low.a": {"pkg.high"}, "pkg.high": {"pkg.low.a"}, "pkg.low.driver": {"pkg.high"}}
    assert upward_imports(graph, layers) == [("pkg.low.a", "pkg.high")]  # the longer entry places the driver
    assert layer_of("pkg.lower", layers) is None and layer_of("pkg.low", layers) == 0


def test_structure_no_module_imports_a_higher_layer():
    graph = import_graph()
    unplaced = sorted(m for m in graph if layer_of(m, LAYERS) is None)
    assert not unplaced, f"modules in no layer: {unplaced}; add each to its layer in LAYERS"
    unused = [e for layer in LAYERS for e in layer if not any(m == e or m.startswith(e + ".") for m in graph)]
    assert not unused, f"LAYERS names modules that do not exist: {unused}; remove them"
    found = upward_imports(graph, LAYERS)
    new = [edge for edge in found if edge not in KNOWN_UPWARD]
    assert not new, (f"imports of a higher layer (importer, imported; lazy imports count): {new}; move the "
                     "code down a layer, or the module up")
    fixed = [edge for edge in KNOWN_UPWARD if edge not in found]
    assert not fixed, f"these upward imports are gone: remove them from KNOWN_UPWARD: {fixed}"


def test_structure_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [("a", "b", "c")]


def _synthetic_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_structure_graph_counts_lazy_and_type_checking_imports(tmp_path):
    root = _synthetic_package(tmp_path, {
        "low.py": "def f():\n    from pkg.high import g  # lazy: still an edge\n    return g\n",
        "high.py": "from pkg import low\n\ndef g():\n    return low\n",
        "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .high import g\n",
        "sub/__init__.py": "", "sub/leaf.py": "from .. import low\n",
    })
    graph = import_graph(root)
    assert graph["pkg.low"] == {"pkg.high"} and graph["pkg.high"] == {"pkg.low"}
    assert graph["pkg.typed"] == {"pkg.high"} and graph["pkg.sub.leaf"] == {"pkg.low"}
    assert cycles(graph) == [("pkg.high", "pkg.low")]
    assert upward_imports(graph, [("pkg.low", "pkg.sub"), ("pkg.high", "pkg.typed", "pkg")]) == [
        ("pkg.low", "pkg.high")]


def test_structure_cycle_check_fails_on_a_reintroduced_lazy_cycle(tmp_path):
    files = {"store.py": "X = 1\n", "runner.py": "from pkg.store import X\n"}
    assert cycles(import_graph(_synthetic_package(tmp_path / "before", files))) == []
    files["store.py"] = "def load():\n    import pkg.runner\n    return pkg.runner\n"
    after = import_graph(_synthetic_package(tmp_path / "after", files))
    assert cycles(after) == [("pkg.runner", "pkg.store")]


def test_structure_private_import_check_finds_each_form(tmp_path):
    root = _synthetic_package(tmp_path, {
        "base.py": "_SECRET = 1\nPUBLIC = 2\n\ndef _helper():\n    from pkg.base import _SECRET  # its own\n",
        "user.py": "from pkg.base import PUBLIC, _SECRET\n\ndef f():\n    from .base import _helper\n",
        "_private.py": "", "mod.py": "from pkg import _private\nfrom pkg.base import __doc__\n",
    })
    outside = tmp_path / "claims.py"
    outside.write_text("from pkg.base import _SECRET\nfrom os import _exit\n")
    assert private_imports(root) == [("pkg.mod", "pkg._private", "_private"),
                                     ("pkg.user", "pkg.base", "_SECRET"), ("pkg.user", "pkg.base", "_helper")]
    assert private_imports(root, {"claims": outside}) == [("claims", "pkg.base", "_SECRET")]


def test_structure_no_import_cycles_among_harness_modules():
    found = cycles(import_graph())
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, (f"import cycle(s) among harness modules (lazy imports count): {new}; move the part both "
                     "use into a module below them")
    fixed = [c for c in KNOWN_CYCLES if c not in found]
    assert not fixed, f"these cycles are gone: remove them from KNOWN_CYCLES: {fixed}"


def test_structure_no_module_imports_private_names_of_another():
    outside = {f"{folder}.{p.stem}": p for folder in ("claims", "benchmarks")
               for p in sorted((HARNESS.parent / folder).glob("*.py"))}
    found = private_imports() + private_imports(importers=outside)
    new = [edge for edge in found if edge not in KNOWN_PRIVATE]
    assert not new, (f"imports of another module's private names (importer, module, name): {new}; make the "
                     "name public where it is shared, or merge the modules")
    fixed = [edge for edge in KNOWN_PRIVATE if edge not in found]
    assert not fixed, f"these private imports are gone: remove them from KNOWN_PRIVATE: {fixed}"


def test_structure_library_modules_are_at_most_400_lines():
    lines = {str(p.relative_to(HARNESS.parent)): len(p.read_text().splitlines()) for p in modules().values()}
    over = {p: n for p, n in lines.items() if n > MAX_LINES}
    new = {p: n for p, n in over.items() if p not in KNOWN_OVER_LIMIT}
    assert not new, f"modules over {MAX_LINES} lines: {new}; split them by concept"
    fixed = [p for p in KNOWN_OVER_LIMIT if p not in over]
    assert not fixed, f"now within {MAX_LINES} lines: remove from KNOWN_OVER_LIMIT: {fixed}"


def test_structure_registered_experiment_names_equal_their_function_names():
    """A name in a cache key, a log line or `harness config` is the function a reader greps for."""
    from harness.claim.registry import all_experiments
    from harness.run.loader import load_claims

    load_claims()
    library = {n: f for n, f in all_experiments().items() if f.__module__.startswith("harness.")}
    assert len(library) >= 15
    differ = sorted((n, f.__name__) for n, f in library.items() if n != f.__name__)
    assert not differ, f"registered name != function name: {differ}"
