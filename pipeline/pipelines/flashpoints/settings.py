"""The flashpoints pipeline's own settings: `FLASHPOINTS_*` environment variables (or `.env`).

They are the deployment's defaults; a job's `options` override them per job.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["FlashpointsSettings"]


class FlashpointsSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLASHPOINTS_", env_file=".env", extra="ignore", case_sensitive=False
    )

    min_words: int = Field(
        20, ge=0, description="Default of the `min_words` option (words of main text needed)."
    )
