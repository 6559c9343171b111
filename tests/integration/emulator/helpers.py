"""Helpers for the emulator tests (configs, job bodies, clients)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from podfleet.emulator import EmulatorConfig

__all__ = ["API_KEY", "FIXTURE_HANDLERS", "client_for", "config", "synthetic"]

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURE_HANDLERS = REPO_ROOT / "tests" / "fixtures" / "handlers"
API_KEY = "test-key-0123456789"


def synthetic(item_id: str, duration_s: float = 0.0) -> dict:
    """A worker-mode job of our real handler.py over one synthetic item."""
    return {
        "input": {
            "mode": "worker",
            "pipeline": "synthetic",
            "items": [{"id": item_id, "duration_s": duration_s}],
        }
    }


def config(tmp: Path, workers: int, cmd: list[str] | None = None, **extra) -> EmulatorConfig:
    env = {"INFER_FITNESS_CHECK": "false", "DATABASE_URL": f"sqlite:///{tmp / 'emu.db'}"}
    return EmulatorConfig(
        workers=workers,
        api_key=API_KEY,
        worker_env=env,
        **{"lost_after_s": 5, "restart_backoff_s": 0.2, "shutdown_grace_s": 10, **extra},
        **({"worker_cmd": cmd} if cmd else {}),
    )


def client_for(emu: Any) -> httpx.Client:
    return httpx.Client(
        base_url=emu.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    )
