"""This machine's pip configuration, for a local image build: pip inside the build must find
packages where pip on this machine finds them (local wheel directories and file:// indexes,
a constraints file), without any of it entering the image or the Dockerfile.

`python3 builder/image/pip_config.py DIR` writes DIR/pip.conf (the merged `pip config list`: files,
then PIP_* variables over them) and prints, one per line, the buildah `--volume` options that bind
pip.conf at /etc/pip.conf (pip's site-wide file) and each local location it names (wheel
directories, file:// indexes, constraints file, CA bundle) read-only under /run/podfleet-pip/
(e.g. /opt/wheels at /run/podfleet-pip/opt/wheels; pip.conf names them there). One prefix,
because buildah leaves a RUN's mount points in its layer as empty files and directories: this
way a locally built image carries only an empty /etc/pip.conf and an empty /run/podfleet-pip
tree, and binding a CA bundle never shadows the image's own /etc/ssl/certs (which the
ca-certificates package writes). A location that does not exist here is dropped; on a machine
with no pip configuration the file is empty and pip uses the default index, as Docker's build on
GitHub does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["PREFIX", "inside", "main", "pip_settings", "plan"]

# Options whose values name package locations (whitespace-separated lists).
LOCATION_KEYS = ("index-url", "extra-index-url", "find-links")
FILE_KEYS = ("constraint", "requirement", "cert", "client-cert")
PREFIX = "/run/podfleet-pip"
LINE = re.compile(r"(?P<section>[\w:-]*)\.(?P<key>[\w-]+)='(?P<value>.*)'")


def pip_settings() -> dict[str, dict[str, str]]:
    """`pip config list` as {section: {key: value}}; PIP_* variables (`:env:`) override the files'
    [global] values, as they do for pip itself."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in out.splitlines():
        match = LINE.fullmatch(line.strip())
        if not match:
            continue
        section, key, value = match["section"], match["key"], match["value"]
        if section == ":env:":
            env[key] = value
        else:
            files.setdefault(section, {})[key] = value
    files.setdefault("global", {}).update(env)
    return {section: values for section, values in files.items() if values}


def _mount_root(location: str) -> Path | None:
    """The local directory or file a location needs bound (None: remote or missing here). A
    file:// index `.../simple` links to files beside it (`../../files/...`): bind its parent."""
    if location.startswith("file://"):
        path = Path(urlparse(location).path)
        if path.name == "simple":
            path = path.parent
    elif location.startswith("/"):
        path = Path(location)
    else:
        return None
    return path if path.exists() else None


def inside(path: Path) -> str:
    """Where a local path is bound in the build."""
    return f"{PREFIX}{path}"


def _rebase(location: str) -> str:
    if location.startswith("file://"):
        return "file://" + inside(Path(urlparse(location).path))
    return inside(Path(location))


def plan(settings: dict[str, dict[str, str]]) -> tuple[str, list[Path]]:
    """(pip.conf text naming every local location under PREFIX, local paths to bind there)."""
    binds: list[Path] = []
    lines: list[str] = []
    for section, values in settings.items():
        kept: list[str] = []
        for key, value in values.items():
            if key in LOCATION_KEYS:
                locations = []
                for location in value.split():
                    root = _mount_root(location)
                    if location.startswith(("file://", "/")) and root is None:
                        continue  # a local location this machine lacks
                    if root is not None:
                        binds.append(root)
                        location = _rebase(location)
                    locations.append(location)
                if not locations:
                    continue
                value = " ".join(locations)
            elif key in FILE_KEYS:
                path = Path(value)
                if not path.is_file():
                    continue
                binds.append(path)
                value = inside(path)
            kept.append(f"{key} = {value}")
        if kept:
            lines += [f"[{section}]", *kept, ""]
    unique: list[Path] = []
    for path in sorted(set(binds), key=lambda p: len(p.parts)):
        if not any(kept in path.parents for kept in unique):
            unique.append(path)  # a location inside one already bound needs no bind of its own
    return "\n".join(lines), unique


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: pip_config.py DIR  (writes DIR/pip.conf, prints --volume options)",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    text, binds = plan(pip_settings())
    conf = out_dir / "pip.conf"
    conf.write_text(text)
    print(f"--volume={conf}:/etc/pip.conf:ro")
    for path in binds:
        print(f"--volume={path}:{inside(path)}:ro")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
