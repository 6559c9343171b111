"""The requirements of some of podfleet's extras, pinned, for an image layer built before the code
is copied in (so a code change does not reinstall them). Used by builder/slim.Dockerfile.

`python builder/image/extras.py OUT_DIR EXTRA...` reads ./pyproject.toml and writes
OUT_DIR/requirements.txt (the base dependencies plus those of the extras, `podfleet[...]`
references expanded) and OUT_DIR/constraints.txt (the pins of builder/requirements.txt and
builder/requirements-dev.txt without their extras markers, which pip refuses in a constraints
file), for `pip install -r OUT_DIR/requirements.txt -c OUT_DIR/constraints.txt`. An unknown
extra is an error naming the known ones.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

__all__ = ["constraints", "main", "requirements"]

SELF = re.compile(r"podfleet\[(?P<extras>[^\]]+)\]\s*$")


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    """Base dependencies plus the named extras' requirements, self-references expanded."""
    optional: dict[str, list[str]] = pyproject["project"].get("optional-dependencies", {})
    out: list[str] = list(pyproject["project"].get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            known = ", ".join(sorted(optional))
            raise SystemExit(f"extras.py: no extra {extra!r} in pyproject.toml (known: {known})")
        seen.add(extra)
        for req in optional[extra]:
            match = SELF.match(req)
            if match:
                todo += [e.strip() for e in match["extras"].split(",")]
            elif req not in out:
                out.append(req)
    return out


def constraints(pin_files: list[Path]) -> list[str]:
    """`name==version` lines of the pin files, extras markers (`psycopg[binary]`) dropped."""
    out = []
    for path in pin_files:
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                out.append(re.sub(r"\[[^\]]*\]", "", line))
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: extras.py OUT_DIR EXTRA...", file=sys.stderr)
        return 2
    out_dir, extras = Path(argv[0]), argv[1:]
    root = Path.cwd()
    with (root / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    pins = [root / "builder" / "requirements.txt", root / "builder" / "requirements-dev.txt"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "requirements.txt").write_text("\n".join(requirements(pyproject, extras)) + "\n")
    (out_dir / "constraints.txt").write_text("\n".join(constraints(pins)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
