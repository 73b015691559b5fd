"""The package's layout rules, checked on its source: imports run downward, no cycles, no private names borrowed.

Stages, lowest first (the README's Layout section): the shared vocabulary at the package top; ``data`` and
``model``; ``pictures``; ``metrics`` and ``official``; ``training``; the command shells (``cli``, ``__main__``).
A module may import from its own stage or from any lower one, never from a higher one or a sibling stage.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pggan"
RANKS = {"": 0, "data": 1, "model": 1, "pictures": 2, "metrics": 3, "official": 3, "training": 4, "shell": 5}
SHELLS = {"pggan.cli", "pggan.__main__"}
#: torch's own _foreach / _dynamo APIs, and pickle's pure-Python _Unpickler that the checked reader builds on
ALLOWED_PRIVATE_RECEIVERS = {"self", "cls", "torch", "pickle"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[dotted.removesuffix(".__init__")] = path
    return found


def stage(module: str) -> str:
    if module in SHELLS:
        return "shell"
    parts = module.split(".")  # pggan.X.Y is in stage X; pggan.X is stage X when X is a folder, else shared
    if len(parts) >= 3 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return ""


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int, list[str]]]:
    """(imported pggan module, line, names taken) for every import in the file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pggan":
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.append((target if target in known else node.module, node.lineno, [alias.name]))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno, []) for a in node.names if a.name.split(".")[0] == "pggan"]
    return found


def test_imports_run_downward_only():
    known = modules()
    wrong = []
    for module, path in known.items():
        own = stage(module)
        for target, line, _ in imports(path, known):
            theirs = stage(target)
            if target == "pggan" or theirs == own:
                continue
            if RANKS[theirs] >= RANKS[own]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own or 'shared'}) imports {target}")
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(wrong)


def test_no_import_cycle():
    known = modules()
    edges = {m: {t for t, _, _ in imports(p, known) if t in known and t != m} for m, p in known.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1 and not known[nxt].name == "__init__.py":
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in known:
        if module not in state:
            visit(module, [module])


def test_no_private_name_is_borrowed():
    known = modules()
    wrong = []
    for path in known.values():
        for target, line, names in imports(path, known):
            wrong += [f"{path.name}:{line} imports {n} from {target}" for n in names if n[0] == "_" and n[1] != "_"]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                receiver = node.value.id if isinstance(node.value, ast.Name) else None
                if receiver not in ALLOWED_PRIVATE_RECEIVERS:
                    wrong.append(f"{path.name}:{node.lineno} uses {receiver}.{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_every_stage_says_its_job_in_one_line():
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) == 1, f"{folder.name}/__init__.py needs a one-line docstring"
        assert folder.name in RANKS, f"pggan/{folder.name}/ has no place in the stage order"
