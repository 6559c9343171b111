"""The installed package layout: `handler/` is `podfleet`, `pipeline/` is `podfleet.pipeline`.

pyproject.toml lists every package by hand (setuptools cannot discover packages under a
renamed directory): this fails when a new subpackage is not listed, so a wheel would lack it.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk() -> set[str]:
    roots = {"podfleet": ROOT / "handler", "podfleet.pipeline": ROOT / "pipeline"}
    found: set[str] = set()
    for prefix, root in roots.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found.add(".".join((prefix, *rel)))
    return found


def test_every_package_on_disk_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"podfleet": "handler", "podfleet.pipeline": "pipeline"}
    listed = set(config["packages"])
    on_disk = _packages_on_disk()
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == set(), "these listed packages have no __init__.py"
