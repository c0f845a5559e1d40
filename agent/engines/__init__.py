"""Inference engines behind one interface; see :mod:`agent.engines.base`."""
