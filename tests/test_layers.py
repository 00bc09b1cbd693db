"""Imports point one way: picl.cli -> reconciler -> operate -> deploy -> {spec, facts, transport}
-> pyinfra. Read from the modules' own imports (every `import`, at the top or inside a function),
so an import the wrong way fails here, not in a review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each of picl's packages lives in the repository.
SOURCES = {"picl": "picl", "picl.deploy": "deploy", "picl.facts": "facts",
           "picl.transport": "transport", "picl.operate": "operate",
           "picl.reconciler": "reconciler"}
# Anyone may import these: the version, errors and exit codes.
BASE = {"picl", "picl.errors", "picl.exit"}
LOWER = {"picl.spec", "picl.facts", "picl.transport"}
# What each layer may import of picl, besides itself and BASE.
MAY_IMPORT: dict[str, set[str]] = {
    "picl.spec": set(),
    "picl.facts": set(),
    "picl.transport": set(),
    "picl.deploy": LOWER,
    "picl.operate": {"picl.deploy", *LOWER},
    "picl.reconciler": {"picl.operate", "picl.deploy", *LOWER},
    "picl.lab": {"picl.spec"},
    "picl.cli": {"picl.lab", "picl.reconciler", "picl.operate", "picl.deploy", *LOWER},
    "picl.reference": {"picl.cli", "picl.spec"},
}
# The one upward import left: the lab takes the CLI's Env (for type checking only).
KNOWN = {("picl.lab", "picl.cli.env")}
# Libraries each may import only where the design puts them.
LIBRARIES = {
    "pyinfra": {"picl.deploy", "picl.facts"},
    "git": {"picl.reconciler"},
    "watchdog": {"picl.reconciler"},
    "blinkt": {"picl.reconciler"},
    "click": {"picl.cli", "picl.reference"},
    "rich": {"picl.cli", "picl.reference"},
}


def layer(module: str) -> str:
    """picl.deploy.plan -> picl.deploy; picl -> picl."""
    return ".".join(module.split(".")[:2])


def modules() -> dict[str, Path]:
    """Every module of picl, by its installed name."""
    found = {}
    for package, directory in SOURCES.items():
        for path in sorted((ROOT / directory).rglob("*.py")):
            parts = path.relative_to(ROOT / directory).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found.setdefault(name, path)  # picl/ holds picl.*; the mapped ones win below it
    return found


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file; `from a import b` gives a.b too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if node.module == "picl"]  # `from picl import lab` is picl.lab
    return found


def wrong_way(module: str, imported: str) -> bool:
    """Whether `module` importing `imported` goes against the arrows."""
    source, target = layer(module), layer(imported)
    if imported.split(".")[0] != "picl":
        allowed = LIBRARIES.get(imported.split(".")[0])
        return allowed is not None and source not in allowed
    if target in BASE or target == source or (layer(module), imported) in KNOWN:
        return False
    return target not in MAY_IMPORT.get(source, set())


def violations() -> list[str]:
    found = []
    for module, path in modules().items():
        for line, imported in imports(path):
            if wrong_way(module, imported):
                found.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {imported}")
    return found


def test_every_import_points_down() -> None:
    assert violations() == []


def test_every_layer_is_known() -> None:
    assert {layer(m) for m in modules()} - BASE <= set(MAY_IMPORT)


@pytest.mark.parametrize(("module", "imported", "wrong"), [
    ("picl.cli.run", "picl.operate.run", False),
    ("picl.reconciler.strips", "picl.transport.remote", False),
    ("picl.reconciler.install", "picl.operate.run", False),
    ("picl.operate.health", "picl.deploy.fstab", False),
    ("picl.deploy.converge", "picl.transport.remote", False),
    ("picl.deploy.converge", "picl.facts.node", False),
    ("picl.deploy.plan", "picl.errors", False),
    ("picl.facts.node", "pyinfra.api", False),
    ("picl.transport.connection", "paramiko.hostkeys", False),
    ("picl.lab", "picl.cli.env", False),
    ("picl.transport.remote", "picl.deploy.connection", True),
    ("picl.transport.remote", "picl.spec", True),
    ("picl.deploy.converge", "picl.operate.run", True),
    ("picl.deploy.plan", "picl.reconciler.status", True),
    ("picl.operate.power", "picl.reconciler.client", True),
    ("picl.reconciler.loop", "picl.cli.env", True),
    ("picl.spec.models", "picl.deploy", True),
    ("picl.facts.node", "picl.deploy.plan", True),
    ("picl.lab.node", "picl.cli.run", True),
    ("picl.deploy.plan", "git", True),
    ("picl.transport.remote", "pyinfra.api", True),
    ("picl.operate.run", "click", True),
])
def test_the_arrows(module: str, imported: str, wrong: bool) -> None:
    assert wrong_way(module, imported) is wrong


def test_a_wrong_way_import_is_named_by_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f():\n    from picl.operate import run\n")
    assert [(line, m) for line, m in imports(bad) if wrong_way("picl.deploy.x", m)] == [
        (5, "picl.operate")]
