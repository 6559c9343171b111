"""Settings: the seeds' variables and defaults, `.env` honoured, README table in sync."""

from __future__ import annotations

import re

import pytest
from podfleet.settings import Settings, endpoint_id_from, load_settings


def test_seed_defaults(clean_env) -> None:
    s = Settings()
    assert s.runpod_workers == 1
    assert s.request_timeout == 7200 and s.gpu_timeout == 7200
    assert s.render_timeout_s == 3600 and s.scrape_timeout_s == 3600
    assert s.navigation_timeout_s == 1800
    assert s.database_url.get_secret_value() == "sqlite:///data/podfleet.db"
    assert s.runpod_endpoint_id is None and not s.endpoint_configured


def test_env_and_dotenv(clean_env, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("RUNPOD_WORKERS=4\nLOG_LEVEL=debug\n")
    monkeypatch.setenv("RUNPOD_WORKERS", "6")  # the environment beats .env
    monkeypatch.setenv("SCRAPE_ALLOW_HOSTS", "127.0.0.1, localhost")
    s = Settings()
    assert s.runpod_workers == 6
    assert s.log_level == "debug"
    assert s.scrape_allow_hosts == ["127.0.0.1", "localhost"]


def test_endpoint_url_accepted(clean_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_ENDPOINT", "https://api.runpod.ai/v2/abc123xyz/run")
    assert Settings().runpod_endpoint_id == "abc123xyz"
    assert endpoint_id_from("abc123xyz") == "abc123xyz"
    assert endpoint_id_from("http://127.0.0.1:8000/v2/local-ep/runsync") == "local-ep"
    with pytest.raises(ValueError, match="endpoint id"):
        endpoint_id_from("https://example.com/nope")


def test_bad_value_names_the_variable(clean_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_WORKERS", "0")
    with pytest.raises(ValueError, match="runpod_workers"):
        Settings()


def test_read_when_asked_not_at_import(clean_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cache: a process reads its settings once and passes them down (podfleet.main binds
    them to the handler), so a later read sees the environment as it is then."""
    monkeypatch.setenv("RUNPOD_WORKERS", "3")
    first = load_settings()
    monkeypatch.setenv("RUNPOD_WORKERS", "5")
    assert first.runpod_workers == 3 and load_settings().runpod_workers == 5


async def test_the_bound_handler_uses_the_settings_read_at_start(
    clean_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podfleet.entry import bound_handler
    from podfleet.pipeline.registry import get_pipeline

    monkeypatch.setenv("REQUEST_TIMEOUT", "1")
    handle = bound_handler(load_settings())
    get_pipeline("synthetic")  # discovery (PODFLEET_PIPELINES) happens at start-up, as in main
    monkeypatch.setenv("REQUEST_TIMEOUT", "not a number")  # read per job, this would fail
    job = {"id": "j1", "input": {"pipeline": "synthetic", "items": [{"id": "a"}]}}
    out = await handle(job)
    assert out["ok"] is True and out["results"][0]["id"] == "a"


def test_secrets_hidden_in_repr(clean_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_supersecret123")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2pw@db/x")
    text = repr(Settings())
    assert "supersecret" not in text and "hunter2pw" not in text


def test_readme_table_matches_settings(repo_root) -> None:
    readme = (repo_root / "README.md").read_text()
    section = readme.split("<!-- settings-table -->")[1]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented - fields == set(), "README documents variables the settings lack"
    assert fields - documented == set(), "settings the README does not document"


def test_a_settings_error_prints_no_part_of_a_secret(clean_env, monkeypatch) -> None:
    """Defect 12: a bad RUNPOD_ENDPOINT_ID printed the key's first characters and the
    DATABASE_URL's tail (password included) as the error's input value."""
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "bad/id")
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:hunter2pass@db.internal:5432/x")
    with pytest.raises(ValueError) as info:
        Settings()
    text = str(info.value) + repr(info.value)
    assert "runpod_endpoint_id" in text and "bad/id" in text  # names the variable and value
    for fragment in ("rpa_", "ABCDEF", "hunter2", "pass@", "db.internal"):
        assert fragment not in text, fragment


def test_no_settings_error_echoes_its_input(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("API_MAX_RETRIES", "rpa_looks_like_a_key")  # a key pasted in the wrong place
    with pytest.raises(ValueError) as info:
        Settings()
    assert "api_max_retries" in str(info.value) and "rpa_looks" not in str(info.value)


def test_an_endpoint_url_with_credentials_is_not_echoed(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("RUNPOD_ENDPOINT", "https://user:s3cretpw@example.com/nope")
    with pytest.raises(ValueError) as info:
        Settings()
    assert "runpod_endpoint" in str(info.value) and "s3cretpw" not in str(info.value)


def test_stage_configs_come_from_the_settings_by_field_name(clean_env, monkeypatch) -> None:
    """No default is copied by hand: with nothing set, the stage configs the settings make are
    the stage config models' own defaults; each field is set by its variable."""
    from podfleet.pipeline.config import PipelineConfig
    from podfleet.worker import STAGE_SECTIONS, pipeline_config, setting_for

    assert pipeline_config(Settings()) == PipelineConfig()
    for section, model in STAGE_SECTIONS.items():
        for field in model.model_fields:
            assert setting_for(section, field) in Settings.model_fields, (section, field)
    for name, value in {
        "CHROMIUM_PATH": "/opt/chrome",
        "SCRAPE_RETRIES": "5",
        "SCRAPE_ALLOW_HOSTS": "a.test,b.test",
        "SCRAPE_TIMEOUT_S": "12",
        "GPU_TIMEOUT": "9",
        "INFER_DEVICE": "cpu",
        "DB_RETRY_S": "1.5",
        "DATABASE_URL": "sqlite:///x.db",
    }.items():
        monkeypatch.setenv(name, value)
    config = pipeline_config(Settings())
    assert config.scrape.executable_path == "/opt/chrome" and config.scrape.retries == 5
    assert config.scrape.allow_hosts == ("a.test", "b.test") and config.scrape.stage_timeout_s == 12
    assert config.infer.timeout_s == 9 and config.infer.device == "cpu"
    assert config.store.retry_s == 1.5 and config.store.database_url == "sqlite:///x.db"
