"""Simulator of the medical-insurance core: an in-memory ledger behind an FSI-style JSON interface."""

from coresim.app import CALL_SERVICE, create_app, run, serve, start_core_sim
from coresim.faults import FaultConfig, FaultError, Faults
from coresim.records import Refusal
from coresim.state import CoreState
from coresim.world import WorldError, load_world

__all__ = [
    "CALL_SERVICE",
    "CoreState",
    "FaultConfig",
    "FaultError",
    "Faults",
    "Refusal",
    "WorldError",
    "create_app",
    "load_world",
    "run",
    "serve",
    "start_core_sim",
]
