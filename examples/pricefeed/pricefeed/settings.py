"""The pipeline's own settings: PRICEFEED_* environment variables (a deployment's, not a job's)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PricefeedSettings"]


class PricefeedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRICEFEED_", extra="ignore")

    # value of one unit in EUR; PRICEFEED_RATES='{"EUR": 1, "USD": 0.9}' replaces the table
    rates: dict[str, float] = Field(
        default_factory=lambda: {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.06, "JPY": 0.0061}
    )
    db_path: str = Field("data/pricefeed.db", description="SQLite file of the loaded prices.")
    max_rows: int = Field(100_000, gt=0, description="Rows one feed may hold.")
