"""Cloud nodes: an operator's OpenAI-compatible upstream, relayed as a first-class node."""
