"""The template way in, on an installed podfleet: a module dropped into the installed
`podfleet/pipeline/pipelines/` (as a fork or an image `COPY`s it there) is found by podfleet's own
entry (`python -m podfleet`, what the repository's handler.py runs), with no registry edit."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Venv, run

MODULE = """
from pydantic import BaseModel
from podfleet import Pipeline, register


class Line(BaseModel):
    id: str
    text: str


class NoOptions(BaseModel):
    pass


class Upper:
    name = "upper"

    async def run(self, items, ctx):
        for state in items:
            state.work = state.work.text.upper()


register(
    Pipeline(
        name="shout",
        item_model=Line,
        options_model=NoOptions,
        stages=(Upper(),),
        start=lambda item, ctx: item,
        finish=lambda work, ctx: {"text": work},
    )
)
"""


def test_a_module_dropped_into_the_installed_pipelines_package(
    full_venv: Venv, tmp_path: Path
) -> None:
    find = "import podfleet.pipeline.pipelines as p; print(p.__path__[0])"
    where = Path(run([full_venv.python, "-c", find], env=full_venv.env(), cwd="/").stdout.strip())
    assert where.is_relative_to(full_venv.root)
    dropped = where / "shout.py"
    dropped.write_text(MODULE)
    try:
        job = {"input": {"pipeline": "shout", "items": [{"id": "a", "text": "hello"}]}}
        done = run(
            [full_venv.python, "-m", "podfleet", "--test_input", json.dumps(job)],
            env=full_venv.env(),
            cwd=tmp_path,
        )
        assert "'results': [{'text': 'HELLO'}]" in done.stdout
    finally:
        dropped.unlink()
