"""API errors: a gRPC status code plus Kubernetes' reason and wording.

The reason (NotFound, AlreadyExists, Conflict, Invalid, Forbidden, BadRequest,
Expired) travels in trailing metadata under REASON_KEY so the CLI can print
`Error from server (NotFound): pods "x" not found` exactly like kubectl.
"""

from __future__ import annotations

import grpc

REASON_KEY = "kubelite-reason"


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def not_found(resource_group: str, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, "NotFound", f'{resource_group} "{name}" not found')


def already_exists(resource_group: str, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, "AlreadyExists",
                    f'{resource_group} "{name}" already exists')


def conflict(resource_group: str, name: str, detail: str = "") -> ApiError:
    detail = detail or ("the object has been modified; please apply your changes "
                        "to the latest version and try again")
    return ApiError(grpc.StatusCode.ABORTED, "Conflict",
                    f'Operation cannot be fulfilled on {resource_group} "{name}": {detail}')


def invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, "Invalid", message)


def bad_request(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, "BadRequest", message)


def forbidden(resource_group: str, name: str, detail: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, "Forbidden",
                    f'{resource_group} "{name}" is forbidden: {detail}')


def expired(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.OUT_OF_RANGE, "Expired", message)


def internal(detail: str) -> ApiError:
    return ApiError(grpc.StatusCode.INTERNAL, "InternalError",
                    f"Internal error occurred: {detail}")
