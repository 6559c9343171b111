"""The image recipe, checked statically (fast, no build): every COPY source exists and survives
.dockerignore, the layers are ordered for the cache, the README, CI and the Dockerfile install
through the same builder scripts, the workflows pin their actions, and the smoke test can fail.
The build itself, and the CMD run inside the built image, are tests/integration/image/
test_image_build.py (buildah): they replaced this file's host-side replays of the RUN steps and
of the CMD, which a real build covers exactly."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

# ---------------------------------------------------------------------------------------------
# Reading the recipe


DOCKERFILES = ["Dockerfile", "builder/slim.Dockerfile"]  # the full image, the slim one


def dockerfile(repo_root: Path, path: str = "Dockerfile") -> DockerfileParser:
    return DockerfileParser(str(repo_root / path))


def instructions(repo_root: Path, name: str, path: str = "Dockerfile") -> list[dict]:
    return [i for i in dockerfile(repo_root, path).structure if i["instruction"] == name]


def copy_args(value: str) -> list[str] | None:
    """[src..., dest] of one COPY/ADD (shell or JSON form); None for `--from=` another stage."""
    value = value.strip()
    if any(w.startswith("--from") for w in shlex.split(value)):
        return None
    if value.startswith("["):
        return json.loads(value)
    return [w for w in shlex.split(value) if not w.startswith("--")]


def copy_sources(repo_root: Path, path: str = "Dockerfile") -> list[tuple[int, str]]:
    """(line, source) for every COPY/ADD from the build context."""
    found = []
    for ins in instructions(repo_root, "COPY", path) + instructions(repo_root, "ADD", path):
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


# ---------------------------------------------------------------------------------------------
# COPY sources and the build context


@pytest.mark.parametrize("path", DOCKERFILES)
def test_every_copy_source_exists_and_survives_dockerignore(repo_root: Path, path: str) -> None:
    sources = copy_sources(repo_root, path)
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


# ---------------------------------------------------------------------------------------------
# The CMD


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


def smoke(
    repo_root: Path, database_url: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.pop("DATABASE_URL", None)
    env["PYTHON"] = sys.executable
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        ["bash", "builder/smoke_test.sh", *args],
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


def test_smoke_test_runs_another_input_file(repo_root: Path) -> None:
    # The slim image's build-time job (synthetic items, no browser or model).
    proc = smoke(repo_root, None, "builder/image/slim_test_input.json")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "smoke_test.sh: ok (builder/image/slim_test_input.json" in proc.stdout
    missing = smoke(repo_root, None, "no/such.json")
    assert missing.returncode != 0 and "no no/such.json" in missing.stderr


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
