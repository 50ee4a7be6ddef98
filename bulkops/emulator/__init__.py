"""A local Console API: the test double for every integration test and the demo's stage.

``create_app(state)`` builds the aiohttp application; :func:`serve` runs it.
"""

from __future__ import annotations

from ..engine.quota import QuotaWindow
from .app import create_app, quota_class
from .server import running_emulator, serve
from .state import EmulatorState, Faults, KeyInfo, Project

__all__ = [
    "EmulatorState",
    "Faults",
    "KeyInfo",
    "Project",
    "QuotaWindow",
    "create_app",
    "quota_class",
    "running_emulator",
    "serve",
]
