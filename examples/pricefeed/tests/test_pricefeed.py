"""pricefeed, tested offline with podfleet's shipped fixtures: in this process, through the
emulated queue in-process, and fanned out over real SDK worker processes running handler.py."""

from __future__ import annotations

import sqlite3

import pytest

EXPECTED = {  # test_input.json, converted to EUR with the default rates
    "acme-eu": {"rows": 3, "min": 7.99, "max": 89.9, "cheapest": {"sku": "A-102", "price": 7.99}},
    "bolt-us": {"rows": 2, "min": 8.97, "max": 86.48, "cheapest": {"sku": "B-200", "price": 8.97}},
    "crown-uk": {"rows": 2, "min": 7.59, "max": 87.74, "cheapest": {"sku": "C-300", "price": 7.59}},
}


def check_output(out: dict) -> None:
    results = out["results"]
    assert [r and r["id"] for r in results] == ["acme-eu", "bolt-us", "crown-uk", None]
    for result in results[:3]:
        want = EXPECTED[result["id"]]
        assert {k: result[k] for k in want} == want
        assert result["currency"] == "EUR"
    assert results[1]["rejected"] == [
        {"line": 3, "reason": "price 'n/a' is not a number"},
        {"line": 5, "reason": "empty sku"},
    ]
    # the feed in an unknown currency fails alone; the others keep their results
    assert out["ok"] is False
    assert [(e["item_id"], e["stage"]) for e in out["errors"]] == [("dingo-au", "convert")]
    assert "AUD" in out["errors"][0]["message"]


def day_rows(db_path, day: str = "2026-11-23") -> list[tuple]:
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT supplier, sku, price FROM prices WHERE day = ? ORDER BY supplier, sku", (day,)
        ).fetchall()


def test_a_job_in_this_process_and_its_idempotent_load(podfleet_run_job, test_input, db_path):
    check_output(podfleet_run_job(test_input))
    first = day_rows(db_path)
    assert len(first) == 7 and ("bolt-us", "A-100", 86.48) in first
    check_output(podfleet_run_job(test_input))  # a re-run replaces its rows, adds none
    assert day_rows(db_path) == first


def test_options_and_bad_input(podfleet_run_job, test_input):
    job = {**test_input["input"], "options": {"target_currency": "USD", "max_price": 50}}
    out = podfleet_run_job(job)
    acme = out["results"][0]
    assert acme["max"] < 50 and {"line": 2, "reason": "price above 50.0"} in acme["rejected"]
    bad = podfleet_run_job({"pipeline": "pricefeed", "items": [{"id": "x", "currency": "EUR"}]})
    assert "items.0.csv" in bad["error"] and "field required" in bad["error"]
    bad = podfleet_run_job({**job, "options": {"target_currency": "XYZ"}})
    assert "options.target_currency" in bad["error"]


async def test_through_the_emulated_queue_in_process(podfleet_inprocess, test_input):
    state = await podfleet_inprocess.run(test_input)
    assert state.status.value == "COMPLETED"
    check_output(state.output)
    state = await podfleet_inprocess.run({"pipeline": "pricefeed", "items": []})
    assert state.status.value == "FAILED" and "items" in str(state.error)


@pytest.mark.podfleet
def test_fans_out_over_three_workers_in_input_order(podfleet_endpoint, db_path):
    csv = "sku,name,price\nS-{0},Item {0},{0}.00\n"
    feeds = [{"id": f"sup-{i}", "currency": "USD", "csv": csv.format(i)} for i in range(1, 10)]
    job = {"pipeline": "pricefeed", "date": "2026-11-24", "items": feeds, "workers": 3}
    out = podfleet_endpoint.output(job, timeout_s=180)
    assert out["ok"] is True, out.get("errors")
    assert [r["id"] for r in out["results"]] == [f["id"] for f in feeds]
    assert [r["min"] for r in out["results"]] == [round(i * 0.92, 2) for i in range(1, 10)]
    assert out["fanout"]["siblings_submitted"] >= 3
    jobs = podfleet_endpoint.emulator.jobs()
    (coordinator,) = [j for j in jobs if j["parent_id"] is None and j["chunk"] is None]
    siblings = [j for j in jobs if j["parent_id"] == coordinator["id"]]
    workers = {j["worker_id"] for j in siblings} | {coordinator["worker_id"]}
    assert len(workers) >= 3, siblings  # the coordinator's worker and at least two others
    assert len(day_rows(db_path, "2026-11-24")) == 9
