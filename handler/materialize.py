"""Items by reference, where they run: read a job's `items_from` rows and validate each one.

A job with `items_from` holds no items until here (`ParsedJob.items` is empty). Its rows are
read (`podfleet.sources.read_rows`: a sibling's own rows, `sibling.ref`, or the whole source) and
each is validated by the pipeline's item model as `parse_job` validates inline items (strict,
JSON mode). Unlike inline items, a bad row does not reject the job: it fails alone, as an
`ItemError` with item id `#<position>` and stage `input`, naming the row and the field, never
its content. After the run, `splice` puts an empty slot back at each bad row so that a job's
results have one slot per row, in row order.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from podfleet.envelope import ParsedJob, check_json_value, format_validation_error
from podfleet.pipeline.errors import InputError
from podfleet.pipeline.runner import PipelineRun
from podfleet.pipeline.stage import ItemError
from podfleet.settings import Settings
from pydantic import BaseModel, ValidationError

__all__ = ["INPUT_STAGE", "Materialized", "materialize", "materialize_rows", "splice"]

INPUT_STAGE = "input"  # the stage named in a bad row's ItemError


@dataclass(frozen=True)
class Materialized:
    """A job with its rows read: `job` holds the valid items; `positions` every row's position
    (row order) and `kept` whether that row became an item (else it is in `errors`)."""

    job: ParsedJob
    errors: list[ItemError]
    positions: list[int]
    kept: list[bool]

    @property
    def rows(self) -> int:
        return len(self.positions)


def _row_error(position: int, problem: str) -> ItemError:
    return ItemError(f"#{position}", INPUT_STAGE, problem, retryable=False)


def _problem_text(exc: InputError) -> str:
    """The InputError's message without its "invalid input: " lead (we name the row instead)."""
    return exc.message.removeprefix("invalid input: ")


def _validate_row(model: type[BaseModel], where: str, row: Any) -> BaseModel | str:
    """The row as the pipeline's item, or what is wrong with it (naming the row and field)."""
    if not isinstance(row, dict):
        return f"{where}: expected a JSON object, got {type(row).__name__}"
    try:
        check_json_value(row)
        return model.model_validate_json(json.dumps(row), strict=True)
    except InputError as exc:
        return f"{where}: {_problem_text(exc)}"
    except ValidationError as exc:
        return f"{where}: {_problem_text(format_validation_error(exc))}"
    except (TypeError, ValueError) as exc:  # not JSON-able after all
        return f"{where}: expected a JSON object ({type(exc).__name__})"


async def materialize_rows(parsed: ParsedJob, settings: Settings) -> Materialized:
    """Read and validate `parsed`'s items_from rows (see the module doc). An inline-items job
    passes through unchanged, its positions 0..n-1. Errors reading the source itself (outside
    ITEMS_FROM_ROOTS, missing, refused URL) are the source's InputError: the job fails."""
    source = parsed.envelope.items_from
    if source is None:
        n = len(parsed.items)
        return Materialized(parsed, [], list(range(n)), [True] * n)
    from podfleet.sources import read_rows  # file/HTTP/table readers only for by-reference jobs

    sibling = parsed.envelope.sibling
    rows = await read_rows(source, sibling.ref if sibling else None, settings)
    pipeline = parsed.pipeline
    jsonl = source.jsonl is not None
    items: list[BaseModel] = []
    ids: list[str] = []
    errors: list[ItemError] = []
    positions: list[int] = []
    kept: list[bool] = []
    first_row: dict[str, int] = {}  # item id -> the row that has it
    for position, row in rows:
        positions.append(position)
        # as the source names its rows' problems: "items_from row 3 (line 4): ..."
        where = f"items_from row {position}" + (f" (line {position + 1})" if jsonl else "")
        item = row if isinstance(row, str) else _validate_row(pipeline.item_model, where, row)
        if isinstance(item, str):
            errors.append(_row_error(position, item))
            kept.append(False)
            continue
        item_id = pipeline.item_id(item)
        if item_id in first_row:
            errors.append(
                _row_error(
                    position,
                    f"{where}: duplicate item id (the same as row {first_row[item_id]}'s)",
                )
            )
            kept.append(False)
            continue
        first_row[item_id] = position
        items.append(item)
        ids.append(item_id)
        kept.append(True)
    job = dataclasses.replace(parsed, items=items, item_ids=tuple(ids))
    return Materialized(job, errors, positions, kept)


async def materialize(
    parsed: ParsedJob, settings: Settings
) -> tuple[ParsedJob, list[ItemError], list[int]]:
    """(the job with its valid items, the errors of rows that failed validation, the positions
    of all its rows): `materialize_rows` as the shared interface's tuple."""
    done = await materialize_rows(parsed, settings)
    return done.job, done.errors, done.positions


def _spread(slots: list[Any], kept: list[bool]) -> list[Any]:
    it = iter(slots)
    return [next(it) if keep else None for keep in kept]


def splice(run: PipelineRun, rows: Materialized) -> PipelineRun:
    """`run` (one slot per valid item) with an empty slot at each bad row, so it has one slot
    per row in row order, and the rows' errors before the run's own."""
    if all(rows.kept):
        return run
    same = len(run.records) == len(run.results)
    return dataclasses.replace(
        run,
        results=_spread(run.results, rows.kept),
        records=_spread(run.records, rows.kept) if same else run.records,
        errors=[*rows.errors, *run.errors],
    )
