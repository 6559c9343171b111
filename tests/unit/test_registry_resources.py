"""Pipelines declare the warm resources they need; the registry answers for all of them."""

from __future__ import annotations

import pytest
from podfleet.pipeline import Pipeline
from podfleet.pipeline.registry import get_pipeline, required_resources
from podfleet.pipeline.resources import Resource
from pydantic import BaseModel


class _Item(BaseModel):
    id: str


def _pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        name="declared",
        item_model=_Item,
        options_model=_Item,
        stages=(),
        start=lambda item, ctx: item,
        finish=lambda work, ctx: {"id": work.id},
        **kwargs,
    )


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
