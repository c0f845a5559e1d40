"""The agent's exceptions.

    AgentError
    ├── ConfigurationError      settings or files the operator must fix; the CLI prints them
    ├── EngineError             the engine failed; counts against the node
    │   └── EngineUnavailable   the engine's package is not installed on this machine
    ├── RequestRejected         the job itself is unusable; neutral for the node
    │   ├── ContextLengthExceeded
    │   ├── ChatTemplateError   (engines.chat_template) the template refused the messages
    │   ├── ConstraintRejected  (engines.shaping) a response format no grammar can follow
    │   └── LogitBiasRejected   (engines.shaping) a biased token outside the vocabulary
    └── FatalLinkError          the coordinator refused this node for good; do not reconnect
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigurationError(AgentError):
    pass


class EngineError(AgentError):
    pass


class EngineUnavailable(EngineError):
    pass


class RequestRejected(AgentError):
    param: str | None = None
    """The request parameter at fault, when it is not the messages."""


class ContextLengthExceeded(RequestRejected):
    pass


class FatalLinkError(AgentError):
    pass
