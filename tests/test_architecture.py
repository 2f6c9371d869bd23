"""The package's structure, read from its source with ``ast`` (nothing is imported).

Layers, lowest first; a module may import its own layer group and any lower layer, never a
higher one nor a sibling group on the same level::

    ground floor   kgrec.errors, kgrec._arrays (integer-key set operations), kgrec._atomic, kgrec._fs,
                   kgrec.config (the config base), kgrec.messages (catalogues)
    1 loaders      kgrec.loaders
    2 graph        kgrec.graph
    3 encoders     kgrec.encoders
    4 fusion       kgrec.fusion
    5              kgrec.evaluation | kgrec.web | kgrec.explore | kgrec.config_tools
    6 cli          kgrec.cli, kgrec.__main__, and the package facade kgrec/__init__.py

``kgrec.explore`` (notebook helpers over a trained model and a store) and ``kgrec.config_tools``
(``make_config``/``config_fields`` over every config class) sit above :mod:`kgrec.fusion`, beside
evaluation and web: they import the model, and nothing below the CLI imports them.
``kgrec/__init__.py`` is the public facade: it (lazily) re-exports names from every layer, so
it is on the top floor and no module of the package may import a name from it.

Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``.
A second rule: no module reads another module's private (``_x``) names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "kgrec"

#: importable by every module; they import nothing of kgrec above the ground floor
GROUND_FLOOR = {"kgrec.errors", "kgrec._arrays", "kgrec._atomic", "kgrec._fs", "kgrec.config", "kgrec.messages"}

#: (layer, group) by module prefix; the longest matching prefix wins
LAYERS: dict[str, tuple[int, str]] = {
    "kgrec.loaders": (1, "loaders"),
    "kgrec.graph": (2, "graph"),
    "kgrec.encoders": (3, "encoders"),
    "kgrec.fusion": (4, "fusion"),
    "kgrec.evaluation": (5, "evaluation"),
    "kgrec.web": (5, "web"),
    "kgrec.explore": (5, "explore"),
    "kgrec.config_tools": (5, "config_tools"),
    "kgrec.cli": (6, "cli"),
    "kgrec.__main__": (6, "cli"),
    "kgrec": (6, "facade"),
}

#: attributes with a leading underscore that are public API of someone else's objects
PUBLIC_UNDERSCORE = {
    "_asdict", "_replace", "_fields", "_make",  # namedtuple's documented methods
}


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def is_package(name: str) -> bool:
    return (PKG.parent / Path(*name.split(".")) / "__init__.py").is_file()


def exists(name: str) -> bool:
    p = PKG.parent / Path(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imported(module: str, tree: ast.Module) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, imported module, names taken from it)`` of every kgrec import in ``tree``."""
    pkg = module if is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "kgrec" or a.name.startswith("kgrec."):
                    yield node.lineno, a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if not (src == "kgrec" or src.startswith("kgrec.")):
                continue
            names = []
            for a in node.names:
                if exists(f"{src}.{a.name}"):  # `from kgrec import loaders`: the submodule itself
                    yield node.lineno, f"{src}.{a.name}", []
                else:
                    names.append(a.name)
            if names:
                yield node.lineno, src, names


def layer(module: str) -> tuple[int, str]:
    if module in GROUND_FLOOR:
        return 0, "ground"
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def test_layer_map_covers_every_module() -> None:
    names = {m for m, _, _ in modules()}
    assert GROUND_FLOOR <= names, f"ground-floor modules missing: {sorted(GROUND_FLOOR - names)}"
    # every package directly under kgrec/ has its own layer (a new one must be placed on purpose)
    top = {m.split(".")[1] for m in names if m.count(".") >= 1}
    unplaced = sorted(t for t in top if f"kgrec.{t}" not in LAYERS and f"kgrec.{t}" not in GROUND_FLOOR)
    assert not unplaced, f"kgrec modules without a layer in tests/test_architecture.py LAYERS: {unplaced}"


def test_imports_follow_the_layer_order() -> None:
    bad = []
    for module, path, tree in modules():
        lvl, grp = layer(module)
        for line, target, _ in imported(module, tree):
            t_lvl, t_grp = layer(target)
            if not (t_grp == grp or t_lvl < lvl):  # own group, or a lower layer (the ground floor only its own)
                bad.append(f"{path.relative_to(PKG.parent)}:{line}: {module} ({grp}, layer {lvl}) imports "
                           f"{target} ({t_grp}, layer {t_lvl})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_circle_inside_a_layer_group() -> None:
    """No two modules of one group import each other, directly or around a circle (any import counts)."""
    graph: dict[str, set[str]] = {}
    for module, _, tree in modules():
        graph[module] = {t for _, t, _ in imported(module, tree) if t != module and layer(t)[1] == layer(module)[1]}
    cycles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, stack + [nxt], done)
        done.add(node)

    done: set[str] = set()
    for m in sorted(graph):
        if m.startswith("kgrec.fusion") and m not in done:
            visit(m, [m], done)
    # a package __init__ re-exporting its modules is not a circle of logic: only module-to-module edges count
    cycles = [c for c in cycles if not any(is_package(p) for p in c.split(" -> "))]
    assert not cycles, "import circles in kgrec.fusion:\n" + "\n".join(sorted(set(cycles)))


def own_private_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: its ``_x`` functions and classes, ``_x = …`` assignments and
    ``self._x = …`` attributes. ``other._x`` inside that module (e.g. ``__eq__`` comparing two
    instances of its own class) reads the module's own private name, not another module's."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name.startswith("_"):
            own.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for tgt in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for sub in ast.walk(tgt):
                    if isinstance(sub, ast.Name) and sub.id.startswith("_"):
                        own.add(sub.id)
                    elif (isinstance(sub, ast.Attribute) and sub.attr.startswith("_") and isinstance(sub.value, ast.Name)
                          and sub.value.id in {"self", "cls"}):
                        own.add(sub.attr)
    return own


def test_no_module_reads_another_modules_private_names() -> None:
    """``from x import _y``, ``mod._y`` and ``obj._y`` (obj not self/cls) for a ``_y`` the module does not
    define itself; dunder names and :data:`PUBLIC_UNDERSCORE` are fine."""
    bad = []
    for module, path, tree in modules():
        where = path.relative_to(PKG.parent)
        own = own_private_names(tree)
        for line, target, names in imported(module, tree):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != module:
                bad.append(f"{where}:{line}: from {target} import {', '.join(private)}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            a = node.attr
            if not a.startswith("_") or (a.startswith("__") and a.endswith("__")) or a in PUBLIC_UNDERSCORE or a in own:
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            if isinstance(owner, ast.Name) and owner.id == "kgrec" and f"kgrec.{a}" in GROUND_FLOOR:
                continue  # `kgrec._atomic` as a module path
            bad.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "uses of another module's private names:\n" + "\n".join(bad)
