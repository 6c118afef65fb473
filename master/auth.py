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


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: set[str]) -> None:
        self.tokens = tokens

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
            context.set_trailing_metadata((("kubelite-reason", "Unauthorized"),))
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "the server has asked for the client to provide credentials")

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await deny(request, context)
            yield  # pragma: no cover - abort raises

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny_stream)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and value.startswith("Bearer ") and \
                    value[len("Bearer "):] in self.tokens:
                return await continuation(details)
        if details.method.endswith("/Watch"):
            return self._deny_stream
        return self._deny_unary
