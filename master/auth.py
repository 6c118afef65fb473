"""Bearer-token authentication for the API (a static token file, as a start).

With a token file configured, every call must carry `authorization: Bearer
<token>` metadata naming one of its tokens; anything else is UNAUTHENTICATED.
The local cluster writes one random token and puts it in the client config.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from kubelite.api import api_pb2


def load_tokens(path: str) -> set[str]:
    """One token per line; `token,user,...` (Kubernetes' token-file form) also works."""
    tokens = set()
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            tokens.add(line.split(",")[0].strip())
    if not tokens:
        raise ValueError(f"token file {path} has no tokens")
    return tokens


def _streaming_methods() -> dict[str, tuple[bool, bool]]:
    """/package.Service/Method -> (client streams, server streams), for every API method."""
    service = api_pb2.DESCRIPTOR.services_by_name["API"]
    return {f"/{service.full_name}/{m.name}": (m.client_streaming, m.server_streaming)
            for m in service.methods}


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: set[str]) -> None:
        self.tokens = tokens
        self._methods = _streaming_methods()

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
            context.set_trailing_metadata((("kubelite-reason", "Unauthorized"),))
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "the server has asked for the client to provide credentials")

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await deny(request, context)
            yield  # pragma: no cover - abort raises

        # A denial must have the method's shape: unary or streaming on each side.
        self._deny = {
            (False, False): grpc.unary_unary_rpc_method_handler(deny),
            (False, True): grpc.unary_stream_rpc_method_handler(deny_stream),
            (True, False): grpc.stream_unary_rpc_method_handler(deny),
            (True, True): grpc.stream_stream_rpc_method_handler(deny_stream),
        }

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and value.startswith("Bearer ") and \
                    value[len("Bearer "):] in self.tokens:
                return await continuation(details)
        return self._deny[self._methods.get(details.method, (False, False))]
