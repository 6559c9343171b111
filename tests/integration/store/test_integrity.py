"""Data integrity on real SQLite and PostgreSQL: after every job, the rows are exactly what the
job's output says (issue 12 defects 5, 7, 8)."""

from __future__ import annotations

import pytest
from podfleet.entry import handler
from podfleet.pipeline.store.schema import JOB_ID_MAX

from tests.integration.store.helpers import assert_rows_match, item, job, read_rows, source


async def test_two_sources_with_one_url_are_two_rows(database_url: str) -> None:
    url = "https://news.example.org/same"
    out = await handler(job("dup", [item("fp", source("alpha", url), source("beta", url))]))
    assert out["ok"] is True, out
    assert out["results"][0]["documents"] == 2
    assert_rows_match(database_url, out)
    assert sorted(d["source_index"] for d in read_rows(database_url)["documents"]) == [0, 1]


async def test_same_page_twice_is_kept_and_marked_duplicate(database_url: str) -> None:
    twice = source("gamma")
    out = await handler(job("twice", [item("fp", twice, twice)]))
    assert out["ok"] is True, out
    assert_rows_match(database_url, out)
    docs = sorted(read_rows(database_url)["documents"], key=lambda d: d["source_index"])
    assert [d["duplicate_of"] for d in docs] == [None, 0]


async def test_rerun_with_fewer_sources_leaves_exactly_the_new_rows(database_url: str) -> None:
    first = await handler(
        job(
            "run-1", [item("fp", source("a"), source("b"), source("c")), item("other", source("d"))]
        )
    )
    assert first["ok"] is True, first
    assert_rows_match(database_url, first)
    second = await handler(job("run-2", [item("fp", source("c"))]))
    assert second["ok"] is True, second
    assert_rows_match(database_url, second, only_this_job=False)
    rows = read_rows(database_url)
    fp_docs = [d for d in rows["documents"] if d["flashpoint_id"] == "fp"]
    assert [(d["source_index"], d["url"]) for d in fp_docs] == [(0, "https://news.example.org/c")]
    assert {r["flashpoint_id"]: r["documents"] for r in rows["flashpoints"]} == {
        "fp": 1,
        "other": 1,
    }


async def test_rerun_with_duplicate_sources_after_distinct_ones(database_url: str) -> None:
    first = await handler(job("r1", [item("fp", source("a"), source("b"))]))
    assert_rows_match(database_url, first)
    url = "https://news.example.org/a"
    second = await handler(
        job("r2", [item("fp", source("a", url), source("b", url), source("z", url))])
    )
    assert second["ok"] is True, second
    assert_rows_match(database_url, second)


async def test_nul_in_one_title_fails_that_item_only(database_url: str) -> None:
    out = await handler(
        job("nul", [item("bad", source("a"), title="broken\x00title"), item("good", source("b"))])
    )
    assert out["ok"] is False
    [error] = out["errors"]
    assert error["item_id"] == "bad" and error["stage"] == "load"
    assert error["message"].startswith("title: contains a NUL character"), error
    assert error["retryable"] is False
    assert out["results"][0] is None and out["results"][1]["id"] == "good"
    assert_rows_match(database_url, out)


async def test_very_long_url_and_unicode_are_stored_exactly(database_url: str) -> None:
    long_url = "https://news.example.org/" + "x" * 8000
    title = "Überfahrt 北京 — مرحبا 🚢 \u200d zero-width"
    out = await handler(
        job("long", [item("long", source("a", long_url)), item("uni", source("b"), title=title)])
    )
    assert out["ok"] is True, out
    assert_rows_match(database_url, out)
    rows = read_rows(database_url)
    assert [d["url"] for d in rows["documents"] if d["flashpoint_id"] == "long"] == [long_url]
    assert {r["flashpoint_id"]: r["title"] for r in rows["flashpoints"]}["uni"] == title


async def test_job_id_too_long_for_its_column_still_loads(database_url: str) -> None:
    job_id = "j" * 5000
    out = await handler(job(job_id, [item("fp", source("a"))]))
    assert out["ok"] is True, out
    assert_rows_match(database_url, out)
    [run] = read_rows(database_url)["runs"]
    assert len(run["job_id"]) <= JOB_ID_MAX and run["job_id"].startswith("jjjj")
    assert run["items"] == 1


async def test_cleanup_then_partial_failure_rows_match(database_url: str) -> None:
    await handler(job("full", [item("a", source("a")), item("b", source("b"))]))
    out = await handler(
        job(
            "clean",
            [item("a", source("a2")), item("c", source("c"), title="nul\x00")],
            cleanup=True,
        )
    )
    assert out["cleanup"] is True and out["ok"] is False
    assert_rows_match(database_url, out)
    assert {r["flashpoint_id"] for r in read_rows(database_url)["flashpoints"]} == {"a"}


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_value_the_database_refuses_fails_that_item_only(database_url, monkeypatch) -> None:
    """A value no pre-check knows about (here a content hash longer than its column, which only
    PostgreSQL enforces) is refused inside the item's savepoint: the other items still load."""
    from podfleet.pipeline.pipelines.flashpoints import stages

    real = stages.TransformStage.run

    async def long_hash(self, items, ctx):
        await real(self, items, ctx)
        for st in items:
            if st.item_id == "odd":
                st.work.sources[0].content_hash = "f" * 65

    monkeypatch.setattr(stages.TransformStage, "run", long_hash)
    out = await handler(job("refused", [item("odd", source("a")), item("fine", source("b"))]))
    [error] = out["errors"]
    assert error["item_id"] == "odd" and error["retryable"] is False
    assert "StringDataRightTruncation" in error["message"], error
    assert "INSERT" not in error["message"]  # no SQL, no parameters in an output
    assert_rows_match(database_url, out)
