"""The flashpoints job in-process through `podfleet.entry.handler` with the real model: scores and
near-duplicate flags in the output, vectors and scores in SQLite and PostgreSQL, a warm model
across jobs, `embed`/`return_vectors` options, and model failures as the job sees them."""

from __future__ import annotations

import copy
import json
from array import array

import numpy as np
import pytest
from podfleet.entry import handler
from podfleet.pipeline.store.schema import documents, flashpoints
from podfleet.worker import RESOURCES
from sqlalchemy import create_engine, select

pytestmark = pytest.mark.model

MODEL_KEY = "model:all-MiniLM-L6-v2"


def lightly_edited(html: str) -> str:
    """A copy that another outlet edited a little: new title, a few words changed."""
    return (
        html.replace("Syndicated Example", "Harbour Gazette")
        .replace("began rerouting", "started rerouting")
        .replace("rose sharply", "climbed sharply")
        .replace("for now", "at this stage")
    )


@pytest.fixture
def job(repo_root) -> dict:
    job = json.loads((repo_root / "test_input.json").read_text())
    job["id"] = "infer-job-1"
    strike = job["input"]["items"][1]
    syndicated = strike["sources"][2]
    assert "syndicated" in syndicated["url"]
    strike["sources"].append(
        {"url": "https://gazette.example.org/ports", "html": lightly_edited(syndicated["html"])}
    )
    return job


def vector(blob: bytes | None) -> np.ndarray:
    assert blob is not None
    out = array("f")
    out.frombytes(blob)
    return np.asarray(out, dtype=np.float32)


def rows(url: str, table) -> list[dict]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(select(table))]
    engine.dispose()
    return found


async def test_job_stores_vectors_and_scores(job: dict, database_url: str) -> None:
    out = await handler(job)
    assert out["ok"] is True, out["errors"]
    assert "embed" in out["timings_s"]
    floods, strike, volcano = out["results"]
    # scores and flags in the output, not the raw vectors
    for result in out["results"]:
        for source in result["sources"]:
            assert 0.2 < source["relevance"] <= 1.0
            assert "embedding" not in source
    assert [s["near_duplicate_of"] for s in strike["sources"]] == [None, None, 1, 1]
    assert strike["near_duplicates"] == 2
    assert floods["near_duplicates"] == volcano["near_duplicates"] == 0

    docs = {(d["flashpoint_id"], d["source_index"]): d for d in rows(database_url, documents)}
    assert len(docs) == sum(len(i["sources"]) for i in job["input"]["items"])
    for doc in docs.values():
        vec = vector(doc["embedding"])
        assert vec.shape == (384,)
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
        assert doc["relevance"] is not None
        assert (doc["embedding_model"], doc["embedding_dim"]) == ("all-MiniLM-L6-v2", 384)
    assert docs[("fp-port-strike", 2)]["near_duplicate_of"] == 1
    assert docs[("fp-port-strike", 2)]["is_near_duplicate"] is True
    assert docs[("fp-port-strike", 3)]["near_duplicate_of"] == 1
    assert docs[("fp-port-strike", 1)]["is_near_duplicate"] is False
    # the edited copy is near, not equal
    edited = vector(docs[("fp-port-strike", 3)]["embedding"])
    original = vector(docs[("fp-port-strike", 1)]["embedding"])
    assert 0.92 <= float(edited @ original) < 0.9999

    for fp in rows(database_url, flashpoints):
        fp_id = fp["flashpoint_id"]
        members = [vector(d["embedding"]) for d in docs.values() if d["flashpoint_id"] == fp_id]
        center = vector(fp["centroid"])
        assert (fp["embedding_model"], fp["embedding_dim"]) == ("all-MiniLM-L6-v2", 384)
        expected = np.mean(members, axis=0)
        assert np.abs(center - expected / np.linalg.norm(expected)).max() < 1e-5


async def test_second_job_reuses_the_warm_model(job: dict, clean_env) -> None:
    first = await handler(job)
    model = RESOURCES.peek(MODEL_KEY)
    created = RESOURCES.created[MODEL_KEY]
    job["id"] = "infer-job-2"
    second = await handler(job)
    assert first["ok"] and second["ok"]
    assert created >= 1  # other tests in this process may have built (and dropped) one before
    assert RESOURCES.created[MODEL_KEY] == created
    assert RESOURCES.peek(MODEL_KEY) is model


async def test_return_vectors_and_embed_off(job: dict, clean_env) -> None:
    job["input"]["options"] = {"return_vectors": True}
    with_vectors = await handler(job)
    embedding = with_vectors["results"][0]["sources"][0]["embedding"]
    assert len(embedding) == 384 and all(isinstance(x, float) for x in embedding)

    job["input"]["options"] = {"embed": False}
    skipped = await handler(job)
    assert skipped["ok"] is True
    for result in skipped["results"]:
        assert result["relevance"] is None and result["near_duplicates"] == 0
        assert {s["relevance"] for s in result["sources"]} == {None}


async def test_a_source_the_gpu_cannot_hold_fails_alone(job: dict, clean_env, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_NAME", "oom_on_poison")
    volcano = job["input"]["items"][2]["sources"][1]
    volcano["html"] = volcano["html"].replace("Blue Lagoon closes", "Poison gas closes")
    out = await handler(job)
    assert out["ok"] is True and out["succeeded"] == 3  # a failed source is not a failed item
    failed = out["results"][2]["sources"][1]
    assert failed["stage"] == "embed" and "out of memory" in failed["error"]
    assert out["results"][2]["documents"] == 1
    assert out["results"][0]["documents"] == 2


async def test_cuda_fault_asks_for_a_worker_refresh(job: dict, clean_env, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_NAME", "cuda_fault")
    out = await handler(copy.deepcopy(job))
    assert out["refresh_worker"] is True
    assert "CUDA fault" in out["error"]
    RESOURCES.refresh_requested = False  # the process-wide flag: leave it clean for others
