"""What the request metrics cost per call: servicekit.metrics.MeasureRequests measured alone.

    .venv/bin/python -m bench.metrics_overhead

1. the wrapper around a no-op handler, called directly: the CPU microseconds it adds per call;
2. a no-op grpc.aio server (uvloop) with and without the interceptor, a client in the same
   process keeping 32 calls in flight: CPU microseconds per call (client and server alike).
CPU time, not wall time, and the best of ROUNDS: the machine may be busy with other work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import uvloop

from servicekit.decoding import RefuseUndecodable
from servicekit.metrics import MeasureRequests, measured

ROUNDS = 3
DIRECT_CALLS = 100_000
SERVER_CALLS = 6_400
IN_FLIGHT = 32
METHOD = "/bench.v1.Noop/Call"


async def noop(request: bytes, context: Any) -> bytes:
    return request


class Context:
    """The part of a servicer context the wrapper reads."""

    def code(self) -> None:
        return None


async def per_direct_call(behavior: Callable[..., Any]) -> float:
    context = Context()
    started = time.process_time()
    for _ in range(DIRECT_CALLS):
        await behavior(b"", context)
    return (time.process_time() - started) / DIRECT_CALLS


async def cpu_per_server_call(interceptors: Sequence[grpc.aio.ServerInterceptor]) -> float:
    server = grpc.aio.server(interceptors=interceptors)
    service, _, method = METHOD[1:].rpartition("/")
    handler = grpc.unary_unary_rpc_method_handler(noop)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, {method: handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD)
        await call(b"")  # connect and warm up

        async def client(n: int) -> None:
            for _ in range(n):
                await call(b"")

        started = time.process_time()
        await asyncio.gather(*(client(SERVER_CALLS // IN_FLIGHT) for _ in range(IN_FLIGHT)))
        cpu = time.process_time() - started
    await server.stop(None)
    return cpu / (SERVER_CALLS // IN_FLIGHT * IN_FLIGHT)


async def main() -> None:
    plain = grpc.unary_unary_rpc_method_handler(noop)
    wrapped = measured(plain, METHOD)
    bare = min([await per_direct_call(plain.unary_unary) for _ in range(ROUNDS)])
    with_metrics = min([await per_direct_call(wrapped.unary_unary) for _ in range(ROUNDS)])
    print(
        f"wrapper, called directly: {bare * 1e6:.2f} µs bare, {with_metrics * 1e6:.2f} µs "
        f"measured: +{(with_metrics - bare) * 1e6:.2f} µs per call"
    )
    without = min([await cpu_per_server_call([RefuseUndecodable()]) for _ in range(ROUNDS)])
    within = min(
        [await cpu_per_server_call([MeasureRequests(), RefuseUndecodable()]) for _ in range(ROUNDS)]
    )
    print(
        f"no-op grpc.aio server, client in process: {without * 1e6:.1f} µs CPU per call "
        f"without, {within * 1e6:.1f} µs with the interceptor: "
        f"+{(within - without) * 1e6:.1f} µs ({(within / without - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    uvloop.run(main())
