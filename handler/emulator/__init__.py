"""A local RunPod serverless endpoint: the queue's client API and worker protocol, real workers.

Out-of-process (uvicorn + N SDK worker processes): `with run_emulator(cfg) as emu: ...`;
in-process (ASGI transport, handler called directly): `async with run_in_process(cfg, handler=fn)`.
See docs/emulator.md.
"""

from handler.emulator.app import create_app
from handler.emulator.config import EmulatorConfig, FaultConfig
from handler.emulator.inprocess import InProcessEmulator, run_in_process
from handler.emulator.jobs import JobStatus
from handler.emulator.runner import Emulator, run_emulator, serve_forever
from handler.emulator.state import EndpointState

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
