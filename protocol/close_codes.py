"""The websocket close codes the coordinator ends a node's connection with (RFC 6455 leaves
4000-4999 to applications). The agent stops for good on the ones it cannot fix by reconnecting."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    REFUSED = 4001  # the node failed authentication, or was removed for faking its model
    REPLACED = 4002  # another connection with the same key took over
    CLOUD_NODE_REMOVED = 4003  # its operator removed the cloud node


FATAL_CLOSE_CODES: dict[int, str] = {
    CloseCode.REFUSED: "the coordinator refused this node",
    CloseCode.REPLACED: "another agent uses this key",
}
