"""The live loop behind ``smart-rollback run``: every part of Smart Rollback on this machine, a faulty deploy,
and the rollback that follows with no human input (docs/live-loop.md)."""

from reactor.liveloop.loop import LiveLoop, Outcome, floor_seconds
from reactor.liveloop.processes import StartError, Supervisor
from reactor.liveloop.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "LiveLoop", "Outcome", "Scenario", "StartError", "Supervisor", "floor_seconds"]
