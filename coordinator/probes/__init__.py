"""Unannounced health checks and model-authenticity checks of nodes."""
