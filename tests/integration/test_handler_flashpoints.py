"""The handler end to end in-process, on real SQLite and real PostgreSQL."""

from __future__ import annotations

import copy
import json

import pytest
from podfleet.entry import handler
from podfleet.pipeline.store.schema import documents, flashpoints, runs
from sqlalchemy import create_engine, func, select


@pytest.fixture
def job(repo_root) -> dict:
    job = json.loads((repo_root / "test_input.json").read_text())
    job["id"] = "job-1"
    return job


def count_rows(url: str) -> dict[str, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (runs, flashpoints, documents)
        }
    engine.dispose()
    return counts


async def test_job_loads_rows_idempotently(job: dict, database_url: str) -> None:
    out = await handler(job)
    assert out["ok"] is True, out
    assert set(out) >= {"ok", "date", "trigger", "cleanup", "workers", "duration_sec"}
    assert [r["id"] for r in out["results"]] == [i["id"] for i in job["input"]["items"]]
    assert out["errors"] == []
    n_sources = sum(len(i["sources"]) for i in job["input"]["items"])
    assert out["load"]["documents"] == n_sources
    assert set(out["timings_s"]) >= {"scrape", "extract", "transform", "load"}
    first = count_rows(database_url)
    assert first == {"runs": 1, "flashpoints": 3, "documents": n_sources}

    job["id"] = "job-2"  # same date again: upserts, no duplicates
    assert (await handler(job))["ok"]
    assert count_rows(database_url) == {"runs": 2, "flashpoints": 3, "documents": n_sources}


async def test_cleanup_replaces_the_dates_rows(job: dict, database_url: str) -> None:
    assert (await handler(job))["ok"]
    smaller = copy.deepcopy(job)
    smaller["id"] = "job-cleanup"
    smaller["input"]["items"] = smaller["input"]["items"][:1]
    smaller["input"]["cleanup"] = True
    out = await handler(smaller)
    assert out["ok"] and out["cleanup"] is True
    assert out["load"]["cleaned"] > 0
    rows = count_rows(database_url)
    assert rows["flashpoints"] == 1
    assert rows["documents"] == len(smaller["input"]["items"][0]["sources"])


async def test_broken_item_does_not_sink_the_others(job: dict, database_url: str) -> None:
    broken = copy.deepcopy(job)
    broken["input"]["items"][1]["sources"] = [
        {"html": "<html><body><nav>menu</nav></body></html>"},
        {"url": "https://unreachable.invalid/page"},
    ]
    out = await handler(broken)
    assert out["ok"] is False
    assert out["results"][1] is None
    assert out["results"][0]["id"] == job["input"]["items"][0]["id"]
    assert out["results"][2]["id"] == job["input"]["items"][2]["id"]
    [error] = out["errors"]
    assert error["item_id"] == job["input"]["items"][1]["id"]
    assert "all 2 sources failed" in error["message"]
    assert count_rows(database_url)["flashpoints"] == 2


async def test_one_failing_source_keeps_the_item(job: dict, database_url: str) -> None:
    partial = copy.deepcopy(job)
    partial["input"]["items"][0]["sources"].append({"html": "<html><body></body></html>"})
    out = await handler(partial)
    assert out["ok"] is True
    result = out["results"][0]
    assert result["failed_sources"] == 1
    assert result["sources"][-1]["error"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"workers": "four"}, "workers"),
        ({"unknown": 1}, "unknown"),
        ({"items": []}, "items"),
        ({"date": "23/11/2026"}, "date"),
        ({"pipeline": "nope"}, "pipeline"),
    ],
)
async def test_malformed_job_returns_error_naming_field(job, clean_env, patch, field) -> None:
    job["input"].update(patch)
    out = await handler(job)
    assert set(out) == {"error"}
    assert out["error"].startswith(f"{field}: ")


async def test_secrets_never_in_output(job: dict, clean_env, monkeypatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_NEVERSHOWN42")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw_NEVERSHOWN@127.0.0.1:1/nodb")
    monkeypatch.setenv("DB_RETRY_S", "0")  # a refused connection is retried 30 s by default
    out = await handler(job)
    dumped = json.dumps(out)
    assert "NEVERSHOWN" not in dumped
    assert out["ok"] is False and out["errors"][0]["stage"] == "load"
    assert out["errors"][0]["retryable"] is True  # refused: transient, worth another try
