"""No setting that silently does nothing: every config path of every claim is read or refused.

"Refused" is tried: a different value set through `apply_overrides` (what `--set` does) raises a one-line
ConfigError that names the path and says who does not read it (`refuse_unread`, `require_spec(fixed=...)`,
or the OptimizerSpec's own "does not read"). An OptimizerSpec field outside its kind's declared `uses` is
refused by the spec itself.

"Read" is static and reaches only what the experiment can run: starting from the registered experiment
function, follow the harness functions it names, the classes it builds (their `__init__`) and the methods it
calls by name; an attribute load that is not a call (`cfg.steps`, not `ctx.steps(...)`) is a read of that
field name. An OptimizerSpec reads name, lr, weight_decay and its kind's declared `uses` through `build`,
and its schedule fields only through `lr_at`, so they count as read where reachable code calls `lr_at`.
Validation (`__post_init__`, `preflight`) is not a read. The name level over-counts (another object's field
of the same name counts), never under-counts, so a flagged path is a real one.
"""
import ast
import dataclasses
import importlib
import inspect
from functools import cache

import pytest

from harness.claim.config import apply_overrides, config_paths, derive
from harness.errors import ConfigError
from harness.optim import CONSTANT_LR, OptimizerSpec, optimizer_kind, optimizer_names
from harness.optim.spec import COMMON_FIELDS
from harness.run import provenance
from harness.run.loader import load_claims

REFUSALS = ("is not read by", "is set by", "does not read")
NOT_READS = ("__post_init__", "preflight")


@cache
def module_index(name: str):
    """(top-level defs by name, imported name -> (module, name), methods by name) of a harness module.

    A function registered by a decorator (`@VISION_MODELS.register("small_cnn")`) is listed under the
    registry's name too, so code that names the registry reaches every function registered in it.
    """
    path = provenance._harness_file(name)
    tree = ast.parse(path.read_text()) if path else ast.Module(body=[], type_ignores=[])
    defs, imports, methods = {}, {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
            names = {n.id for d in node.decorator_list for n in ast.walk(d) if isinstance(n, ast.Name)}
            for registry in names:
                defs.setdefault(registry, ast.Module(body=[], type_ignores=[])).body.append(node)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    methods.setdefault(item.name, []).append(item)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
            imports.update({a.asname or a.name: (node.module, a.name) for a in node.names})
    return defs, imports, methods


@cache
def measurement_modules() -> tuple[str, ...]:
    """Every harness module whose code can change a measurement (provenance's rule)."""
    files = sorted(provenance.PACKAGE_ROOT.rglob("*.py"))
    root = provenance.PACKAGE_ROOT
    names = (".".join(("harness", *p.relative_to(root).with_suffix("").parts)) for p in files)
    return tuple(m for m in names
               if not m.endswith("__init__") and not provenance._excluded(m))


@cache
def all_methods(name: str) -> tuple:
    """(module, def) of the methods called `name` in any measurement module of the harness."""
    return tuple((m, node) for m in measurement_modules() for node in module_index(m)[2].get(name, []))


def reachable_reads(fn) -> tuple[set[str], set[str]]:
    """(attribute names loaded as values, attribute names called) in the code reachable from `fn`."""
    reads, calls, seen = set(), set(), set()
    todo = [(fn.__module__, module_index(fn.__module__)[0][fn.__name__])]
    while todo:
        module, node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ast.ClassDef):  # building it runs __init__; other methods only when called
            todo += [(module, n) for n in node.body if getattr(n, "name", "") == "__init__"]
            continue
        defs, imports, _ = module_index(module)
        called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute):
                (calls if id(n) in called else reads).add(n.attr)
                if n.attr not in NOT_READS:
                    todo += list(all_methods(n.attr))
            elif isinstance(n, ast.Name) and n.id in defs:
                todo.append((module, defs[n.id]))
            elif isinstance(n, ast.Name) and n.id in imports:
                source, name = imports[n.id]
                target = module_index(source)[0].get(name)
                if target is not None and not provenance._excluded(source):
                    todo.append((source, target))
    return reads, calls


def spec_field_read(spec: OptimizerSpec, field: str, reads: set[str], calls: set[str]) -> bool | None:
    """True/False for a spec field read or not through `build` / `lr_at`; None: the spec refuses it itself."""
    if field in CONSTANT_LR:
        return "lr_at" in calls
    if field in COMMON_FIELDS or field in optimizer_kind(spec.name).uses:
        return "build" in calls or "as_kind" in calls
    return None


@cache
def module_strings(module: str) -> tuple[str, ...]:
    """The string constants of a module's source: the choices its configs accept are among them."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return tuple(sorted(s for s in strings if s.isidentifier()))


def candidates(value, module: str):
    """Values of the same type that differ from `value` (one of them usually passes validation)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value * 2, max(value - 1, 0)]
    if isinstance(value, float):
        return [value * 2 or 0.5, value / 2, 0.5, value + 0.1]
    if isinstance(value, str):
        return ["cosine" if value != "cosine" else "constant", *optimizer_names(), *module_strings(module)]
    return []


def refusal(config, path: str, value) -> str | None:
    """The one-line refusal `--set path=<other value>` gives, or None when no different value is refused."""
    for other in candidates(value, type(parent_of(config, path)).__module__):
        if other == value:
            continue
        raw = ",".join(map(str, other)) if isinstance(other, tuple) else str(other)
        try:
            apply_overrides(config, {path: raw})
        except ConfigError as e:
            if any(r in str(e) for r in REFUSALS):
                return str(e)
    return None


def parent_of(config, path: str):
    for part in path.split(".")[:-1]:
        config = getattr(config, part)
    return config


def walk(claims):
    """(claim, tier, path, verdict) for every leaf path: "refused", "read" or "silent"."""
    for cid, claim in sorted(claims.items()):
        reads, calls = reachable_reads(claim.experiment)
        for tier_name, tier in claim.tiers.items():
            for path, value in config_paths(tier.config):
                parent, field = parent_of(tier.config, path), path.rpartition(".")[2]
                read = (spec_field_read(parent, field, reads, calls) if isinstance(parent, OptimizerSpec)
                        else field in reads)
                if read is None or read:
                    yield cid, tier_name, path, "refused" if read is None else "read"
                    continue
                message = refusal(tier.config, path, value)
                if message is not None:
                    assert "\n" not in message and field in message, message
                yield cid, tier_name, path, "refused" if message is not None else "silent"


def library_claims() -> dict:
    """The claims of claims/ (their experiments live in the harness), not those other test modules register."""
    return {cid: c for cid, c in load_claims().items() if c.experiment.__module__.startswith("harness.")}


def test_config_reads_every_path_is_read_or_refused():
    claims = library_claims()
    rows = list(walk(claims))
    silent = sorted({(cid, path) for cid, _, path, verdict in rows if verdict == "silent"})
    assert len(claims) >= 18 and len({cid for cid, *_ in rows}) == len(claims)
    assert any(v == "read" for *_, v in rows)
    assert not silent, f"config paths accepted but never read (claim, path): {silent}"


def test_config_reads_overhead_refuses_the_schedule_it_ignores():
    config = load_claims()["ire-overhead"].tier("cpu").config
    with pytest.raises(ConfigError, match=r"^base[.]optim[.]schedule is not read by the timed blocks"):
        apply_overrides(config, {"base.optim.schedule": "constant"})
    assert [v for c, t, p, v in walk({"ire-overhead": load_claims()["ire-overhead"]})
            if p == "base.optim.schedule"] == ["refused"] * 3


def test_config_reads_static_reads_see_the_loop_not_the_module():
    """The LLM arm calls lr_at; the overhead experiment imports that module but its timed loop does not."""
    claims = load_claims()
    assert "lr_at" in reachable_reads(claims["ire-llm-speedup"].experiment)[1]
    assert "lr_at" not in reachable_reads(claims["ire-overhead"].experiment)[1]


@pytest.mark.parametrize("key, value", [("optim.schedule", "cosine"), ("optim.lr_warmup_steps", "10"),
                                        ("optim.final_lr_fraction", "0.1")])
def test_config_reads_full_batch_gd_refuses_a_schedule(key, value):
    config = load_claims()["gd-edge-of-stability"].tier("cpu").config
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')} is set by the full-batch loop"):
        apply_overrides(config, {key: value})


BASES = {"sgd": {"momentum": 0.5}, "sam": {"momentum": 0.5, "rho": 0.05},
         "ire": {"momentum": 0.5, "kappa": 1.0, "gamma": 0.5},
         "sam_ire": {"momentum": 0.5, "rho": 0.05, "kappa": 1.0, "gamma": 0.5},
         "adamw_ire": {"kappa": 1.0, "gamma": 0.5}, "ire_projected": {"momentum": 0.5, "kappa": 1.0}}


def fingerprint(opt) -> dict:
    """What a built optimizer holds: its param groups' settings and its wrappers' plain attributes."""
    plain = {k: v for k, v in vars(opt).items() if isinstance(v, (bool, int, float, str, tuple))}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    base = getattr(opt, "base_optimizer", None)
    return {"type": type(opt).__name__, "plain": plain, "groups": groups,
            "base": fingerprint(base) if base is not None and base is not opt else None}


def _replaced(spec: OptimizerSpec, field: str, value) -> OptimizerSpec | None:
    try:
        return dataclasses.replace(spec, **{field: value})
    except ConfigError:
        return None


@pytest.mark.parametrize("name", optimizer_names())
def test_config_reads_each_optimizer_kind_builds_from_every_field_it_declares(name):
    """An OptimizerKind's `uses` declares what it reads: each declared field reaches the built optimizer."""
    import torch

    spec = OptimizerSpec(name, lr=0.1, **BASES.get(name, {}))
    params = [torch.nn.Parameter(torch.zeros(3))]
    before = fingerprint(spec.build(params))
    unread = []
    for field in sorted(optimizer_kind(name).uses | {"lr", "weight_decay"}):
        value = getattr(spec, field)
        special = {"mask": ["random"], "betas": [(0.5, 0.9)]}
        others = special.get(field) or candidates(value, "harness.optim.spec")
        changed = next(c for c in (_replaced(spec, field, o) for o in others if o != value) if c is not None)
        if fingerprint(changed.build(params)) == before:
            unread.append(field)
    assert not unread, f"{name} declares {unread} but its optimizer does not hold them"


@pytest.mark.parametrize("claim_id, tier, key, value", [
    ("ire-llm-speedup", "cpu", "base.data_root", "/elsewhere"),   # stdlib reads no root
    ("ire-llm-speedup", "gpu", "base.max_bytes", "5000"),         # wikitext103 is read whole
    ("ire-overhead", "gpu", "base.tokenizer", "gpt2"),            # random tokens need no tokenizer
])
def test_config_reads_a_text_source_refuses_what_it_does_not_read(claim_id, tier, key, value):
    config = load_claims()[claim_id].tier(tier).config
    field = key.rpartition(".")[2]
    refused = rf"^{field} is not read by the \w+ text source: leave it at its default"
    with pytest.raises(ConfigError, match=refused):
        apply_overrides(config, {key: value})


def test_config_reads_an_embedded_data_set_refuses_a_data_root():
    from harness.data.datasets import check_data_source

    config = derive(load_claims()["gd-edge-of-stability"].tier("cpu").config, data_root="/elsewhere")
    with pytest.raises(ConfigError, match=r"^data_root is not read by the embedded data set 'digits'"):
        config.preflight()
    check_data_source("digits", "")  # no root: fine
