"""The OpenAI-compatible consumer API."""
