"""Client-side view of API errors: code, Kubernetes reason, message."""

from __future__ import annotations

import grpc

REASON_KEY = "kubelite-reason"

_DEFAULT_REASONS = {
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.ABORTED: "Conflict",
    grpc.StatusCode.INVALID_ARGUMENT: "BadRequest",
    grpc.StatusCode.FAILED_PRECONDITION: "Forbidden",
    grpc.StatusCode.PERMISSION_DENIED: "Forbidden",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthorized",
    grpc.StatusCode.OUT_OF_RANGE: "Expired",
    grpc.StatusCode.UNAVAILABLE: "ServiceUnavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Timeout",
}


class APIStatusError(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str, *,
                 from_server: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        # False when no server answered (no reason came back): unreachable, refused.
        self.from_server = from_server

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> APIStatusError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        reason = ""
        trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
        for key, value in trailing or ():
            if key == REASON_KEY:
                reason = value
        return cls(code, reason or _DEFAULT_REASONS.get(code, "InternalError"), details or "",
                   from_server=bool(reason))

    @property
    def not_found(self) -> bool:
        return self.reason == "NotFound"

    @property
    def conflict(self) -> bool:
        return self.reason == "Conflict"

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"
