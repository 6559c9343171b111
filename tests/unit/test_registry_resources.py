"""Pipelines declare the warm resources they need (the registry answers for all of them) and own
their settings (read from the environment with their own prefix)."""

from __future__ import annotations

import datetime as dt

import pytest
from podfleet.pipeline import Pipeline, PipelineConfig, RunContext, WarmResources, run_pipeline
from podfleet.pipeline.registry import get_pipeline, required_resources
from podfleet.pipeline.resources import Resource
from podfleet.pipeline.stage import PipelineSettingsError, clear_settings_cache
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Item(BaseModel):
    id: str


def _pipeline(**kwargs) -> Pipeline:
    fields = {
        "name": "declared",
        "item_model": _Item,
        "options_model": _Item,
        "stages": (),
        "start": lambda item, ctx: item,
        "finish": lambda work, ctx: {"id": work.id},
    }
    return Pipeline(**{**fields, **kwargs})


def test_builtins_declare_their_resources() -> None:
    assert get_pipeline("flashpoints").resources == {
        Resource.BROWSER,
        Resource.MODEL,
        Resource.DATABASE,
    }
    assert get_pipeline("synthetic").resources == frozenset()
    assert {Resource.BROWSER, Resource.MODEL, Resource.DATABASE} <= required_resources()


def test_resources_accept_names_and_default_to_none() -> None:
    assert _pipeline().resources == frozenset()
    declared = _pipeline(resources={"model", Resource.DATABASE})
    assert declared.resources == {Resource.MODEL, Resource.DATABASE}
    assert all(isinstance(r, Resource) for r in declared.resources)
    assert _pipeline(resources="browser").resources == {Resource.BROWSER}


def test_unknown_resource_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown resource 'gpu'.*browser, model, database"):
        _pipeline(resources={"gpu"})


class _WordSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORDS_")
    min_length: int = 3


def test_pipeline_settings_read_with_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_cache()
    monkeypatch.setenv("WORDS_MIN_LENGTH", "5")
    pipeline = _pipeline(settings_model=_WordSettings)
    assert pipeline.settings().min_length == 5
    assert _pipeline().settings() is None
    clear_settings_cache()
    monkeypatch.setenv("WORDS_MIN_LENGTH", "five")
    with pytest.raises(PipelineSettingsError, match="WORDS_MIN_LENGTH: Input should be a valid"):
        pipeline.settings()
    clear_settings_cache()


async def test_stages_see_the_pipeline_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_cache()
    monkeypatch.setenv("WORDS_MIN_LENGTH", "4")
    seen = []

    class Look:
        name = "look"

        async def run(self, items, ctx) -> None:
            seen.append(ctx.settings.min_length)

    pipeline = _pipeline(settings_model=_WordSettings, stages=(Look(),))
    ctx = RunContext("t", PipelineConfig(), WarmResources(), _Item(id="o"), dt.date(2026, 1, 1))
    run = await run_pipeline(pipeline, [_Item(id="a")], ctx)
    assert run.results == [{"id": "a"}] and seen == [4]
    clear_settings_cache()


def test_flashpoints_min_words_defaults_to_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from podfleet.pipeline.pipelines.flashpoints import FlashpointsOptions

    clear_settings_cache()
    assert FlashpointsOptions().min_words == 20  # the seeds' default, unchanged
    monkeypatch.setenv("FLASHPOINTS_MIN_WORDS", "7")
    clear_settings_cache()
    assert FlashpointsOptions().min_words == 7
    assert FlashpointsOptions(min_words=3).min_words == 3  # a job's option still wins
    clear_settings_cache()


def test_models_must_be_pydantic_models() -> None:
    with pytest.raises(TypeError, match="options_model must be a subclass of pydantic's BaseModel"):
        _pipeline(options_model=BaseModel)
    with pytest.raises(TypeError, match="item_model must be a subclass"):
        _pipeline(item_model=dict)
