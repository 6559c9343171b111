"""The image recipe, checked on this machine (no Docker engine here): every COPY source exists and
survives .dockerignore, the Dockerfile's own CMD and ENV run ./test_input.json both from the repo
root and from a copy of the build context (what `COPY . .` would see), the smoke test can fail, and
the README, CI and the Dockerfile install through the same builder scripts."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

# ---------------------------------------------------------------------------------------------
# Reading the recipe


def dockerfile(repo_root: Path) -> DockerfileParser:
    return DockerfileParser(str(repo_root / "Dockerfile"))


def instructions(repo_root: Path, name: str) -> list[dict]:
    return [i for i in dockerfile(repo_root).structure if i["instruction"] == name]


def copy_args(value: str) -> list[str] | None:
    """[src..., dest] of one COPY/ADD (shell or JSON form); None for `--from=` another stage."""
    value = value.strip()
    if any(w.startswith("--from") for w in shlex.split(value)):
        return None
    if value.startswith("["):
        return json.loads(value)
    return [w for w in shlex.split(value) if not w.startswith("--")]


def copy_sources(repo_root: Path) -> list[tuple[int, str]]:
    """(line, source) for every COPY/ADD from the build context."""
    found = []
    for ins in instructions(repo_root, "COPY") + instructions(repo_root, "ADD"):
        words = copy_args(ins["value"])
        if words is None:
            continue
        assert len(words) >= 2, f"Dockerfile line {ins['startline'] + 1}: COPY needs src and dest"
        found += [(ins["startline"] + 1, src) for src in words[:-1]]
    return found


def dockerignore(repo_root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (is_exception, regex), Docker's rules: paths relative to the context root,
    `*` and `?` stop at `/`, `**` crosses directories, `!` re-includes, the last match wins."""
    rules = []
    for raw in (repo_root / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex + r"\Z")))
    return rules


def excluded(rel_path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether `COPY . .` leaves rel_path out: a rule matching the path or any parent counts."""
    parts = Path(rel_path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            verdict = not negate
    return verdict


def stage_context(repo_root: Path, dest: Path) -> list[str]:
    """Copy what `COPY . .` would see (the repo minus .dockerignore) to dest; return its files."""
    rules = dockerignore(repo_root)
    copied = []
    for dirpath, dirnames, filenames in os.walk(repo_root):
        rel_dir = Path(dirpath).relative_to(repo_root)
        dirnames[:] = [d for d in dirnames if not excluded(str(rel_dir / d), rules)]
        for name in filenames:
            rel = str(rel_dir / name) if str(rel_dir) != "." else name
            if excluded(rel, rules):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / rel, dest / rel)
            copied.append(rel)
    return copied


def cmd_env(repo_root: Path, db_path: Path) -> dict[str, str]:
    """This shell's environment without RunPod's or podfleet's variables (a RUNPOD_WEBHOOK_GET_JOB
    would start the production loop), plus the Dockerfile's ENV and a throwaway SQLite file."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RUNPOD_") and k not in ("DATABASE_URL", "PODFLEET_TEST_DATABASE_URL")
    }
    env.update(dockerfile(repo_root).envs)
    env["DATABASE_URL"] = f"sqlite:///{db_path}"
    return env


_STAGED_RUNNER = """\
import importlib.util, os, runpy, sys, tomllib
# Hide the host's editable install of podfleet: the staged copy must import its own code only.
sys.meta_path[:] = [
    f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
]
script = sys.argv.pop(1)
sys.argv[0] = script
here = os.path.dirname(os.path.abspath(script))
sys.path[0] = here
# The image installs the staged copy (`pip install -e .` in its code layer); apply the same
# package-dir mapping from the staged pyproject.toml, pointing at the staged files only.
pyproject = os.path.join(here, "pyproject.toml")
if os.path.exists(pyproject):
    with open(pyproject, "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    class StagedFinder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name not in mapping:
                return None
            directory = os.path.join(here, mapping[name])
            return importlib.util.spec_from_file_location(
                name, os.path.join(directory, "__init__.py"),
                submodule_search_locations=[directory],
            )
    sys.meta_path.insert(0, StagedFinder)
runpy.run_path(script, run_name="__main__")
"""


def staged_python(tmp_path: Path) -> list[str]:
    """This interpreter, running a script as `python SCRIPT` would, but blind to the checkout's
    editable install, so a staged copy finds only the files staged with it (as in the image)."""
    runner = tmp_path / "run_staged.py"
    runner.write_text(_STAGED_RUNNER)
    return [sys.executable, str(runner)]


def run_cmd(
    repo_root: Path, workdir: Path, db_path: Path, python: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = json.loads(dockerfile(repo_root).cmd)
    assert argv[0] in ("python", "python3"), argv  # the image's `python`: this interpreter
    options = [a for a in argv[1:] if a.startswith("-")]
    rest = argv[1 + len(options) :]
    python = python or [sys.executable]
    argv = [python[0], *options, *python[1:], *rest]
    return subprocess.run(
        argv,
        cwd=workdir,
        env=cmd_env(repo_root, db_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def job_result(output: str) -> str:
    """The SDK's `Job result: {...}` line of a local run ('' if absent)."""
    lines = [line for line in output.splitlines() if "Job result: " in line]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------------
# COPY sources and the build context


def test_every_copy_source_exists_and_survives_dockerignore(repo_root: Path) -> None:
    sources = copy_sources(repo_root)
    assert sources, "the Dockerfile copies nothing"
    rules = dockerignore(repo_root)
    for line, src in sources:
        assert not any(ch in src for ch in "*?["), f"line {line}: keep COPY sources literal: {src}"
        path = repo_root / src
        assert path.exists(), f"Dockerfile line {line}: COPY source {src!r} is not in the repo"
        if src.rstrip("/") in ("", "."):
            continue
        assert not excluded(src.rstrip("/"), rules), f"line {line}: .dockerignore excludes {src}"
        if path.is_dir():
            kept = [
                p for p in path.rglob("*.py") if not excluded(str(p.relative_to(repo_root)), rules)
            ]
            assert kept, f"line {line}: .dockerignore leaves nothing of {src}"


def test_dockerignore_keeps_secrets_and_local_state_out(repo_root: Path) -> None:
    rules = dockerignore(repo_root)
    for path in (
        ".env",
        ".git/config",
        "data/podfleet.db",
        "bench/results/x.json",
        "pipeline/store/__pycache__/tables.cpython-311.pyc",
        ".venv/bin/python",
    ):
        assert excluded(path, rules), f"{path} would enter the image"
    for path in (
        "handler.py",
        "test_input.json",
        "pyproject.toml",
        "README.md",
        "handler/entry.py",
        "pipeline/runner.py",
        "builder/setup.sh",
        "builder/smoke_test.sh",
        "builder/requirements.txt",
    ):
        assert not excluded(path, rules), (
            f"{path} is needed in the image but .dockerignore drops it"
        )


def test_dockerignore_matcher_follows_docker_rules(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("# c\n*.log\n**/cache\ndocs\n!docs/keep.md\n/build\n")
    rules = dockerignore(tmp_path)
    assert excluded("a.log", rules)
    assert not excluded("sub/a.log", rules)  # `*` does not cross `/`: Docker, unlike git
    assert excluded("x/y/cache/z", rules)
    assert excluded("docs/other.md", rules)
    assert not excluded("docs/keep.md", rules)
    assert excluded("build/out", rules)
    assert not excluded("builder/setup.sh", rules)


def apply_copy(repo_root: Path, stage: Path, words: list[str]) -> None:
    """COPY src... dest into stage (the WORKDIR), as Docker would, .dockerignore honoured."""
    rules = dockerignore(repo_root)
    *sources, dest = words
    for src in sources:
        path = repo_root / src
        if path.is_dir():
            for item in path.rglob("*"):
                rel = str(item.relative_to(repo_root))
                if item.is_file() and not excluded(rel, rules):
                    target = stage / dest / item.relative_to(path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(item, target)
        else:
            target = stage / dest / path.name if dest.endswith("/") else stage / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def test_each_layer_runs_with_only_what_was_copied_before_it(
    repo_root: Path, tmp_path: Path
) -> None:
    """Every RUN before `COPY . .` (system packages, pins, model bake), run on this machine in a
    WORKDIR holding only the files the Dockerfile has copied so far: a step that needs a file
    copied later would pass on a host checkout and fail in `docker build`; here it fails."""
    stage = tmp_path / "app"
    stage.mkdir()
    env = cmd_env(repo_root, tmp_path / "unused.db")
    env["PYTHON"] = sys.executable
    python = " ".join(shlex.quote(a) for a in staged_python(tmp_path))
    ran = []
    for ins in dockerfile(repo_root).structure:
        if ins["instruction"] in ("COPY", "ADD"):
            words = copy_args(ins["value"])
            if words == [".", "."]:
                break  # the code layer: the CMD tests above run it
            if words:
                apply_copy(repo_root, stage, words)
        elif ins["instruction"] == "RUN":
            command = ins["value"].strip()
            # --image also empties apt's lists, which a host keeps; the package check stays.
            command = command.replace(" --image", "")
            command = re.sub(r"^python3? ", python + " ", command)
            proc = subprocess.run(
                ["bash", "-c", command],
                cwd=stage,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, f"RUN {command}: {(proc.stdout + proc.stderr)[-3000:]}"
            ran.append(command)
    assert len(ran) >= 3, ran  # system packages, pins, bake


# ---------------------------------------------------------------------------------------------
# The CMD, run as the image runs it


@pytest.mark.parametrize("where", ["repo root", "build context"])
def test_cmd_processes_test_input(repo_root: Path, tmp_path: Path, where: str) -> None:
    workdir, python = repo_root, None
    if where == "build context":
        workdir = tmp_path / "app"
        files = stage_context(repo_root, workdir)
        assert "test_input.json" in files and "handler.py" in files
        python = staged_python(tmp_path)
    db_path = tmp_path / "smoke.db"
    proc = run_cmd(repo_root, workdir, db_path, python)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    result = job_result(output)
    assert "Job result: {'output': " in result and "'ok': True" in result, output[-3000:]
    assert db_path.exists(), "the job did not write to DATABASE_URL"


def test_cmd_and_workdir_are_what_runpod_expects(repo_root: Path) -> None:
    parser = dockerfile(repo_root)
    assert json.loads(parser.cmd) == ["python", "-u", "handler.py"]
    workdir = instructions(repo_root, "WORKDIR")[-1]["value"].strip()
    assert workdir.startswith("/")
    assert parser.envs.get("CHROMIUM_PATH") == "/usr/bin/chromium"
    # test_input.json reaches the WORKDIR through `COPY . .`
    assert (".", ".") in [tuple(i["value"].split()) for i in instructions(repo_root, "COPY")]


# ---------------------------------------------------------------------------------------------
# The smoke test itself


def smoke(repo_root: Path, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.pop("DATABASE_URL", None)
    env["PYTHON"] = sys.executable
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        ["bash", "builder/smoke_test.sh"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_smoke_test_passes_on_a_working_checkout(repo_root: Path) -> None:
    proc = smoke(repo_root, None)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "smoke_test.sh: ok" in proc.stdout


def test_smoke_test_fails_when_the_job_is_not_ok(repo_root: Path) -> None:
    # Nothing listens on port 1: every item fails at load, the handler still exits 0 (item
    # failures are not job failures), and only the output's ok=False tells. The smoke test must.
    proc = smoke(repo_root, "postgresql://nobody:x@127.0.0.1:1/none")
    assert proc.returncode != 0
    assert "does not say ok" in proc.stderr


# ---------------------------------------------------------------------------------------------
# One recipe: README, CI and Dockerfile install through the same builder scripts


def test_readme_ci_and_dockerfile_install_through_the_same_builder_scripts(
    repo_root: Path,
) -> None:
    readme = (repo_root / "README.md").read_text()
    setup_lines = [line for line in readme.splitlines() if "builder/setup.sh" in line]
    assert any(line.lstrip().startswith("bash builder/setup.sh") for line in setup_lines), (
        "the README's set-up command no longer runs builder/setup.sh"
    )
    ci = (repo_root / ".ci" / "run").read_text()
    assert "bash builder/setup.sh --dev" in ci

    runs = [i["value"] for i in instructions(repo_root, "RUN")]
    setup_runs = [r for r in runs if "builder/setup.sh" in r]
    assert any("--system-only" in r for r in setup_runs), "system packages not via setup.sh"
    assert any("--no-project" in r for r in setup_runs), "pinned requirements not via setup.sh"
    for run in runs:
        # Package lists and pins live only in builder/: no installs of the Dockerfile's own.
        assert not re.search(r"\b(pip|apt-get|apt)\s+install\b", run), (
            f"RUN installs directly: {run}"
        )
    copied = {src for _, src in copy_sources(repo_root)}
    assert {"builder/setup.sh", "builder/requirements.txt"} <= copied
    setup = (repo_root / "builder" / "setup.sh").read_text()
    assert "requirements.txt" in setup
    assert any("builder/smoke_test.sh" in r for r in runs), "no build-time smoke test"
    assert any("builder/bake_model.py" in r for r in runs), "no model bake"


def test_layers_ordered_for_cache(repo_root: Path) -> None:
    """System packages → pinned requirements → model bake → the code (`COPY . .`) last."""
    order = [(i["instruction"], i["value"]) for i in dockerfile(repo_root).structure]

    def first(pred) -> int:
        return next(n for n, (ins, value) in enumerate(order) if pred(ins, value))

    system = first(lambda ins, v: ins == "RUN" and "--system-only" in v)
    pins = first(lambda ins, v: ins == "RUN" and "--no-project" in v)
    bake = first(lambda ins, v: ins == "RUN" and "bake_model.py" in v)
    code = first(lambda ins, v: ins == "COPY" and v.split() == [".", "."])
    assert system < pins < bake < code
    requirements = first(lambda ins, v: ins == "COPY" and "requirements.txt" in v)
    assert system < requirements, "a pin change would reinstall the system packages"


# ---------------------------------------------------------------------------------------------
# The workflows exercise the same recipe


def workflow(repo_root: Path, name: str) -> dict:
    import yaml  # PyYAML comes with transformers

    return yaml.safe_load((repo_root / ".github" / "workflows" / name).read_text())


def steps(wf: dict) -> list[dict]:
    return [step for job in wf["jobs"].values() for step in job.get("steps", [])]


def test_workflows_run_the_recipe_and_pin_their_actions(repo_root: Path) -> None:
    ci = workflow(repo_root, "ci.yml")
    assert any(s.get("run", "").strip() == "bash .ci/run" for s in steps(ci))

    image = workflow(repo_root, "image.yml")
    image_steps = steps(image)
    builds = [s for s in image_steps if s.get("uses", "").startswith("docker/build-push-action@")]
    assert builds and all("type=gha" in s["with"]["cache-from"] for s in builds)
    smoke_runs = [s["run"] for s in image_steps if "builder/smoke_test.sh" in s.get("run", "")]
    assert smoke_runs and all(r.startswith("docker run --rm") for r in smoke_runs)
    logins = {
        s["with"].get("registry"): s for s in image_steps if "login-action" in s.get("uses", "")
    }
    assert logins["ghcr.io"]["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"

    for wf in (ci, image):
        assert wf["permissions"] in ({}, {"contents": "read"}), "workflow-level permissions"
        for step in steps(wf):
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"not pinned: {uses}"
            if uses and uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    for name in ("ci.yml", "image.yml"):
        text = (repo_root / ".github" / "workflows" / name).read_text()
        for line in text.splitlines():
            if line.strip().startswith(("uses:", "- uses:")):
                assert re.search(r"@[0-9a-f]{40} # v\d", line), f"{name}: say the version: {line}"
