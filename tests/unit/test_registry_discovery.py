"""How a user's pipelines get in without editing podfleet: a module dropped into
`pipeline/pipelines/`, an entry point (group `podfleet.pipelines`), PODFLEET_PIPELINES, or
`register()` in the user's own `handler.py` (imported twice: as `__main__` and by name).

Each case runs in a fresh interpreter: the registry is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PIPELINE_MODULE = """
from pydantic import BaseModel
from podfleet import Pipeline, register


class Line(BaseModel):
    id: str
    text: str


class Options(BaseModel):
    upper: bool = False


class Count:
    name = "count"

    async def run(self, items, ctx):
        for state in items:
            if not state.work.text.strip():
                state.fail(self.name, "empty text")


PIPE = register(
    Pipeline(
        name="{name}",
        item_model=Line,
        options_model=Options,
        stages=(Count(),),
        start=lambda item, ctx: item,
        finish=lambda item, ctx: {{"id": item.id, "words": len(item.text.split())}},
        resources={resources},
    )
)
"""


def _module(name: str, resources: str = "frozenset()") -> str:
    return PIPELINE_MODULE.format(name=name, resources=resources)


REPORT = """
import json
from podfleet.pipeline import registry
print(json.dumps({"known": registry.known_pipelines(),
                  "resources": sorted(registry.required_resources())}))
"""


def _run(code: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd), "HOME": str(cwd)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + REPORT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_module_dropped_into_the_pipelines_package_is_found(tmp_path: Path) -> None:
    drop = tmp_path / "dropped"
    drop.mkdir()
    (drop / "wordcount.py").write_text(_module("wordcount"))
    code = f"""
    import podfleet.pipeline.pipelines as package
    package.__path__.append({str(drop)!r})  # as if the file were in pipeline/pipelines/
    """
    report = _run(code, tmp_path)
    assert "wordcount" in report["known"]
    assert {"flashpoints", "synthetic"} <= set(report["known"])


def test_entry_point_and_setting_register_a_library_pipelines(tmp_path: Path) -> None:
    pkg = tmp_path / "textpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "lines.py").write_text(_module("lines", '{"database"}'))
    (pkg / "other.py").write_text(_module("other"))
    dist = tmp_path / "textpkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: textpkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[podfleet.pipelines]\nlines = textpkg.lines:PIPE\n")
    code = """
    from podfleet.pipeline import registry
    registry.configure(builtins=False)
    """
    report = _run(code, tmp_path, {"PODFLEET_PIPELINES": "textpkg.other"})
    assert report == {"known": ["lines", "other"], "resources": ["database"]}


def test_no_model_without_a_pipeline_that_declares_one(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(_module("mine", '{"browser"}'))
    code = """
    from podfleet.pipeline import registry
    registry.configure(builtins=False, modules=["mine"])
    """
    assert _run(code, tmp_path) == {"known": ["mine"], "resources": ["browser"]}
    # with podfleet's built-ins, flashpoints brings the model (and the rest)
    assert _run("import mine", tmp_path)["resources"] == ["browser", "database", "model"]


def test_same_module_imported_twice_is_one_registration(tmp_path: Path) -> None:
    """A user's handler.py defines its pipeline and is also named by PODFLEET_PIPELINES."""
    handler = tmp_path / "handler.py"
    handler.write_text(_module("lines") + "\nfrom podfleet import serve\nserve()\n")
    job = {"input": {"pipeline": "lines", "items": [{"id": "a", "text": "one two"}]}}
    done = subprocess.run(
        [sys.executable, "handler.py", "--test_input", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PODFLEET_PIPELINES": "handler"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'words': 2" in done.stdout  # the SDK prints the output's repr


def test_two_pipelines_with_one_name_name_both_modules(tmp_path: Path) -> None:
    (tmp_path / "first.py").write_text(_module("same"))
    (tmp_path / "second.py").write_text(_module("same"))
    done = subprocess.run(
        [sys.executable, "-c", "import first, second"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "DuplicatePipelineError" in done.stderr
    assert "first.py" in done.stderr and "second.py" in done.stderr


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_module", "PODFLEET_PIPELINES ('no_such_module') failed to load"),
        ("broken", "ZeroDivisionError"),
    ],
)
def test_a_module_that_does_not_load_is_named(tmp_path: Path, spec: str, expected: str) -> None:
    (tmp_path / "broken.py").write_text("1 / 0\n")
    done = subprocess.run(
        [sys.executable, "-c", "from podfleet import known_pipelines; known_pipelines()"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "PODFLEET_PIPELINES": spec},
    )
    assert done.returncode != 0
    assert "PipelineImportError" in done.stderr and expected in done.stderr


def test_serve_without_any_pipeline_says_how_to_add_one(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text("from podfleet import serve\nserve()\n")
    done = subprocess.run(
        [sys.executable, "handler.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "no pipeline is registered" in done.stderr
    assert "PODFLEET_PIPELINES" in done.stderr
