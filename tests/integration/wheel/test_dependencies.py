"""Every third-party module podfleet's code imports is declared in pyproject.toml (the base or an
extra), and the base stays the client's: no torch, Playwright, SQLAlchemy or RunPod SDK in it."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib

from conftest import REPO_ROOT

HEAVY = {"torch", "playwright", "sqlalchemy", "runpod", "sentence-transformers", "uvicorn"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0].lower().replace("_", "-")


_SCAN = """
import ast, json, sys
from pathlib import Path
root = Path(sys.argv[1])
found = {}
for sub in ("handler", "pipeline"):
    for path in (root / sub).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "podfleet":
                    found.setdefault(top, []).append(str(path.relative_to(root)))
print(json.dumps(found))
"""


def _imports() -> dict[str, set[str]]:
    """Parsed in a fresh interpreter: CPython 3.11.7's ast.parse can fail with "AST constructor
    recursion depth mismatch" after earlier tests hit the recursion limit (the fuzz suite does)."""
    proc = subprocess.run(
        [sys.executable, "-c", _SCAN, str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {k: set(v) for k, v in json.loads(proc.stdout).items()}


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        declared |= {_name(r) for r in reqs if not r.startswith("podfleet[")}
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in sorted(_imports().items()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if module == "pytest_asyncio":  # the plugin's optional fixture, guarded by ImportError
            continue
        if not names & declared:
            missing[module] = sorted(files)[:3]
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_the_base_install_is_the_client() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    assert base & HEAVY == set()
    extras = project["optional-dependencies"]
    assert {"client", "worker", "scrape", "infer", "store", "testing", "all"} <= set(extras)
