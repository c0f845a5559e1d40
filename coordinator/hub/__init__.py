"""The nodes' side of the coordinator: their websocket endpoint and the live-node registry."""
