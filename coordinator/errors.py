"""The coordinator's exceptions, each mapped to an HTTP status and an OpenAI error body.

    CoordinatorError                      500 server_error
    ├── InvalidRequest                    400 invalid_request_error
    │   ├── ContextLengthExceeded         400 context_length_exceeded: no live node's context
    │   │                                     holds the prompt and the completion asked for
    │   └── RequestTooLarge               413 invalid_request_error
    ├── AuthenticationFailed              401 authentication_error
    ├── PermissionDenied                  403 permission_error
    ├── InsufficientCredits               402 insufficient_quota
    ├── NotFound                          404 invalid_request_error
    │   └── ModelNotFound                 404 model_not_found
    ├── RateLimited                       429 rate_limit_error (Retry-After)
    │   └── QueueFull                     429 queue_full
    ├── NoCapacity                        503 service_unavailable (Retry-After)
    ├── TopupsUnavailable                 503 topups_disabled: no treasury configured
    ├── CloudNodesUnavailable             503 cloud_nodes_disabled: no master key configured
    ├── UpstreamFailed                    502 upstream_error: every node that tried failed
    └── SolanaRpcFailed                   502 solana_rpc_error: the Solana RPC did not answer
                                              usefully (only the top-up watcher meets it)

``coordinator.gateway.errors`` turns any of these into the response; nothing else writes error
bodies.
"""

from __future__ import annotations


class CoordinatorError(Exception):
    status = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(
        self, message: str, *, param: str | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(CoordinatorError):
    status = 400
    error_type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class RequestTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class AuthenticationFailed(CoordinatorError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(CoordinatorError):
    status = 403
    error_type = "permission_error"


class InsufficientCredits(CoordinatorError):
    status = 402
    error_type = "insufficient_quota"
    code = "insufficient_credits"


class NotFound(CoordinatorError):
    status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class RateLimited(CoordinatorError):
    status = 429
    error_type = "rate_limit_error"
    code = "rate_limited"


class QueueFull(RateLimited):
    code = "queue_full"


class NoCapacity(CoordinatorError):
    status = 503
    error_type = "service_unavailable"
    code = "no_capacity"


class UpstreamFailed(CoordinatorError):
    status = 502
    error_type = "server_error"
    code = "upstream_error"


class TopupsUnavailable(CoordinatorError):
    status = 503
    error_type = "service_unavailable"
    code = "topups_disabled"


class CloudNodesUnavailable(CoordinatorError):
    status = 503
    error_type = "service_unavailable"
    code = "cloud_nodes_disabled"


class SolanaRpcFailed(CoordinatorError):
    """Any failure talking to the Solana JSON-RPC endpoint: transport, HTTP, JSON-RPC error,
    or an answer that does not have the documented shape. Messages never carry the RPC URL."""

    status = 502
    error_type = "server_error"
    code = "solana_rpc_error"
