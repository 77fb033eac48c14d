"""The package's folders are its architecture: each subpackage imports only the floors its docstring names (its
`Imports:` line), the modules on top (cli, init, publish) may import anything, and no import, eager or lazy,
closes a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"
FLOORS = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every newsletter module `path` imports, at its top or inside a function."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.startswith("newsletter"):
                names = [f"{target}.{alias.name}" for alias in node.names]
                found |= {n for n in names if _is_module(n)} or {target}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("newsletter")}
    return {name for name in found if name != here}


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def floor_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FLOORS) else ""


def allowed_floors(floor: str) -> set[str]:
    doc = ast.get_docstring(ast.parse((PACKAGE / floor / "__init__.py").read_text(encoding="utf-8"))) or ""
    match = re.search(r"^Imports: (.+?)\.?$", doc, re.M)
    assert match, f"newsletter/{floor}/__init__.py says nothing of what it may import (an 'Imports:' line)"
    named = {word.strip() for word in match[1].split(",")} - {"nothing of newsletter outside this package"}
    assert named <= set(FLOORS), named - set(FLOORS)
    return named | {floor}


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def test_every_floor_imports_only_the_floors_it_names() -> None:
    upward = []
    for module, targets in graph().items():
        floor = floor_of(module)
        if not floor:
            continue  # the top: the command line and what it calls
        allowed = allowed_floors(floor)
        upward += [f"{module} -> {target}" for target in targets if floor_of(target) not in allowed]
    assert upward == []


def test_no_import_cycles() -> None:
    edges = graph()
    # a package's __init__ re-exporting its own modules is not a cycle of the architecture
    edges = {m: {t for t in ts if not (m.startswith(t + ".") and (PACKAGE.parent / Path(*t.split("."))).is_dir())}
             for m, ts in edges.items()}  # fmt: skip
    cycles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_rules_are_read_from_the_docstrings() -> None:
    assert set(FLOORS) == {"base", "audience", "edition", "delivery", "web", "checks"}
    assert allowed_floors("base") == {"base"}
    assert allowed_floors("edition") == {"base", "audience", "edition"}


def test_modules_and_functions_stay_small() -> None:
    """No module over 400 lines, no function over 60 (the argument parser's table excepted): a reader sees a
    module whole and a function at a glance."""
    long_modules, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 400:
            long_modules.append(module_name(path))
        for node in ast.walk(ast.parse(text)):
            function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name != "_parser"
            if function and node.end_lineno - node.lineno + 1 > 60:
                long_functions.append(f"{module_name(path)}.{node.name}")
    assert long_modules == [] and long_functions == []


def test_only_the_edges_look_at_the_working_directory() -> None:
    """The command line finds the workspace; everything below takes it as an argument."""
    looking = sorted(module_name(p) for p in PACKAGE.rglob("*.py") if "Path.cwd()" in p.read_text(encoding="utf-8"))
    assert looking == ["newsletter.commands"]
