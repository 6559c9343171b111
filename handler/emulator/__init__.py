"""A local RunPod serverless endpoint: the queue's client API and worker protocol, real workers.

Out-of-process (uvicorn + N SDK worker processes): `with run_emulator(cfg) as emu: ...`;
in-process (ASGI transport, handler called directly): `async with run_in_process(cfg, handler=fn)`.
See docs/emulator.md.
"""

from podfleet.emulator.app import create_app
from podfleet.emulator.config import EmulatorConfig, FaultConfig
from podfleet.emulator.inprocess import InProcessEmulator, run_in_process
from podfleet.emulator.jobs import JobStatus
from podfleet.emulator.runner import Emulator, run_emulator, serve_forever
from podfleet.emulator.state import EndpointState

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EndpointState",
    "FaultConfig",
    "InProcessEmulator",
    "JobStatus",
    "create_app",
    "run_emulator",
    "run_in_process",
    "serve_forever",
]
