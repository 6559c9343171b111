"""What a job sends (validated by podfleet before a stage runs) and what travels between stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Feed", "FeedOptions", "FeedWork", "Row"]

Currency = Literal["EUR", "USD", "GBP", "CHF", "JPY"]


class Feed(BaseModel):
    """One supplier's price list: CSV text with a header (`sku,name,price`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=200, description="The supplier's id.")
    currency: str = Field(min_length=3, max_length=3, description="ISO code of the CSV's prices.")
    csv: str = Field(min_length=1, max_length=5_000_000)


class FeedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_currency: Currency = Field("EUR", description="Currency of every price in the output.")
    max_price: float | None = Field(None, gt=0, description="Rows above it are rejected.")
    return_rows: bool = Field(False, description="Put the converted rows in the output.")


@dataclass
class Row:
    line: int  # line number in the CSV (the header is line 1)
    sku: str
    name: str
    price: float  # in the feed's currency, then in the target currency after `convert`


@dataclass
class FeedWork:
    feed: Feed
    rows: list[Row] = field(default_factory=list)
    rejected: list[dict[str, object]] = field(default_factory=list)
    currency: str = ""
