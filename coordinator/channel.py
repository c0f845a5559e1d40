"""What one job's channel carries to whoever awaits the job, and how sending a job can fail.

Shared by the hub (jobs on this replica's nodes), the bus (jobs relayed to another replica's) and
everyone who reads a job's events.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.session import JobEvent


@dataclass(frozen=True, slots=True)
class JobCutOff:
    """The job's channel ended before the node's last word: the node left, the consumer read
    too slowly, the replica relaying it went away, or the coordinator is shutting down."""

    reason: str


ChannelEvent = JobEvent | JobCutOff


class DispatchFailed(Exception):
    """The job could not be sent to the chosen node (it left or is draining, speaks too old a
    protocol, or the bus could not carry the job): nothing ran, the next attempt may go
    elsewhere."""
