"""Typed application keys of the simulator app."""

from __future__ import annotations

from aiohttp import web

from coresim.faults import Faults
from coresim.state import CoreState

STATE = web.AppKey("coresim_state", CoreState)
FAULTS = web.AppKey("coresim_faults", Faults)
