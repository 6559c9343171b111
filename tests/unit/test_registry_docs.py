"""docs/pipelines.md's example runs as written: its pipeline block plus `serve()` as a user's
handler.py, through RunPod's local mode, with the job the doc shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_the_documented_pipeline_runs_as_a_handler(repo_root: Path, tmp_path: Path) -> None:
    doc = (repo_root / "docs" / "pipelines.md").read_text()
    python = _blocks(doc, "python")
    pipeline = next(b for b in python if "class Count" in b)
    settings = next(b for b in python if "class WordcountSettings" in b)
    serve = next(b for b in python if b.strip().endswith("serve()"))
    code = pipeline.replace(
        "        finish=", "        settings_model=WordcountSettings,\n        finish="
    )
    settings = settings.replace("Pipeline(..., settings_model=WordcountSettings)", "")
    (tmp_path / "handler.py").write_text(settings + "\n" + code + "\n" + serve)
    items = [{"id": "a", "text": "one two"}, {"id": "b", "text": "x"}]
    job = {"pipeline": "wordcount", "items": items, "options": {"min_words": 2}}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "handler.py", "--test_input", json.dumps({"input": job})],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'results': [{'id': 'a', 'words': 2}, None]" in done.stdout
    assert "only 1 words" in done.stdout
    # a bad setting stops the worker before its first job, naming the variable
    bad = subprocess.run(
        [sys.executable, "handler.py", "--test_input", json.dumps({"input": job})],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**env, "WORDCOUNT_MAX_WORDS": "abc"},
    )
    assert bad.returncode != 0
    assert "invalid settings: WORDCOUNT_MAX_WORDS: Input should be a valid integer" in bad.stderr
    assert "Traceback" not in bad.stderr
