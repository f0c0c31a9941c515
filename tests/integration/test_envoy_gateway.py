"""bread's Envoy config, checked against a real Envoy.

1. The rendered config passes `envoy --mode validate` (local and Kubernetes/DNS topologies).
2. With no service running: the errors Envoy makes itself have the JSON error shape for
   HTTP/JSON clients and stay proper gRPC statuses for gRPC clients.
3. With a small real gRPC server standing in for order and pay: transcoding, the edge timeout,
   and the mesh's pay timeout, circuit breaker, retries and outlier ejection.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bread.bakery.v1 import bakery_pb2, bakery_pb2_grpc
from bread.order.v1 import order_pb2, order_pb2_grpc
from bread.pay.v1 import pay_pb2, pay_pb2_grpc
from harness.envoy import EnvoyProcess, start_envoy
from harness.ports import free_port
from ops.dev_signin import SignInServer
from ops.envoy_config import REPO_ROOT, EnvoyTopology, envoy_binary, render
from ops.tokens import DevIssuer
from servicekit import registry

pytestmark = pytest.mark.timeout(60)

JSON = {"content-type": "application/json"}
# The edge verifies tokens against this issuer's JWKS: an operator may call everything.
ISSUER = DevIssuer(Path(tempfile.mkdtemp(prefix="bread-keys-"))).ensure_keys()
AUTH = {"authorization": f"Bearer {ISSUER.token('tester', 'operator')}"}
CALLER = tuple(AUTH.items())
GRPCURL_AUTH = f"authorization: {AUTH['authorization']}"
ORDER = "bread.order.v1.Order"
PAGE_ORIGIN = "http://localhost:5173"


def dead_upstreams() -> dict[str, list[tuple[str, int]]]:
    """Free ports where nothing listens: every service is down."""
    return {name: [("127.0.0.1", free_port())] for name in registry.NAMES}


def local_topology(**changes: object) -> EnvoyTopology:
    """Port 0: Envoy picks free ports, start_envoy reads them back."""
    topology = EnvoyTopology(
        edge_port=0,
        mesh_port=0,
        admin_port=0,
        listen_address="127.0.0.1",
        jwks_path=ISSUER.jwks_path,
        cors_origins=(PAGE_ORIGIN,),
        rate_limit=0,
    )
    return replace(topology, upstreams=dead_upstreams(), **changes)  # type: ignore[arg-type]


def assert_json_error(response: httpx.Response, status: int, code: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert body["details"] == [] and isinstance(body["message"], str) and body["message"], body
    return dict(body)


# ------------------------------------------------------------------ 1. validation


def envoy_validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "topology",
    [
        EnvoyTopology(jwks_path=ISSUER.jwks_path),
        EnvoyTopology(jwks_path=ISSUER.jwks_path, dev_signin=("127.0.0.1", 8085)),
        EnvoyTopology(
            jwks_path=ISSUER.jwks_path,
            dns=True,
            descriptor_path=REPO_ROOT / "build" / "bread.pb",
            upstreams={
                "order": [("order", 8081)],
                "pay": [("pay", 8082)],
                "bakery": [("bakery.bread.svc.cluster.local", 8083)],
                "customer": [("customer", 8084), ("10.0.0.7", 8084)],
            },
        ),
    ],
    ids=["local", "local-dev-signin", "dns"],
)
def test_rendered_config_is_valid(topology: EnvoyTopology, tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text(render(topology))
    result = envoy_validate(config)
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing deprecated: Envoy warns about deprecated fields it still accepts.
    assert "deprecated" not in (result.stdout + result.stderr).lower()


def test_cli_renders_replicas_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "envoy.yaml"
    result = subprocess.run(
        [
            sys.executable,
            *("-m", "ops.envoy_config", "--out", str(out), "--validate"),
            # Not the default var/keys, which exists only once `make run` or `make token` ran.
            *("--jwks", str(ISSUER.jwks_path)),
            *("--upstream", "order=127.0.0.1:18081,127.0.0.1:28081"),
            *("--pay-timeout-ms", "500"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    assert "port_value: 18081" in text and "port_value: 28081" in text
    assert "timeout: 0.5s" in text


@pytest.mark.parametrize(
    "changes",
    [
        {"upstreams": {**EnvoyTopology().upstreams, "pay": [("pay", 8082)]}},  # name, no --dns
        {"upstreams": {"order": [("127.0.0.1", 8081)]}},  # services missing
        {"place_order_timeout_ms": 600},  # edge would cut PlaceOrder before order's pay call ends
    ],
)
def test_render_refuses_unsound_topology(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render(replace(EnvoyTopology(), **changes))  # type: ignore[arg-type]


# ------------------------------------------------------------------ 2. nothing upstream


@pytest.fixture(scope="module")
def dead_envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    with start_envoy(local_topology(), tmp_path_factory.mktemp("envoy")) as envoy:
        yield envoy


def test_json_request_to_a_down_service_is_503_json_at_once(dead_envoy: EnvoyProcess) -> None:
    started = time.monotonic()
    response = httpx.get(f"{dead_envoy.edge_url}/orders/x", headers=AUTH, timeout=5)
    assert time.monotonic() - started < 1.0
    body = assert_json_error(response, 503, 14)
    assert body["message"] == "no healthy upstream"


def test_path_of_no_rpc_is_404_json(dead_envoy: EnvoyProcess) -> None:
    assert_json_error(httpx.get(f"{dead_envoy.edge_url}/nope", headers=AUTH, timeout=5), 404, 5)
    # Not even a service's gRPC path as plain HTTP: nothing but gRPC and JSON reaches a service.
    response = httpx.get(
        f"{dead_envoy.edge_url}/bread.order.v1.OrderService/GetOrder", headers=AUTH, timeout=5
    )
    assert_json_error(response, 404, 5)


def test_transcoder_parse_error_is_400_json(dead_envoy: EnvoyProcess) -> None:
    # Rejected by the transcoder while reading the body, before the router looks for a host:
    # a 400 even though order is down.
    response = httpx.post(
        f"{dead_envoy.edge_url}/orders", json={"item": "cake", "qty": "abc"}, headers=AUTH
    )
    body = assert_json_error(response, 400, 3)
    assert "qty" in str(body["message"])
    response = httpx.post(
        f"{dead_envoy.edge_url}/orders", content=b"{not json", headers={**JSON, **AUTH}
    )
    assert_json_error(response, 400, 3)


def test_unknown_query_parameter_is_400_json(dead_envoy: EnvoyProcess) -> None:
    response = httpx.get(
        f"{dead_envoy.edge_url}/orders", params={"customr": "c1"}, headers=AUTH, timeout=5
    )
    body = assert_json_error(response, 400, 3)
    assert "customr" in str(body["message"])


def test_grpc_call_to_a_down_service_is_unavailable(dead_envoy: EnvoyProcess) -> None:
    with grpc.insecure_channel(dead_envoy.edge_target) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetOrder(order_pb2.GetOrderRequest(id="x"), timeout=5, metadata=CALLER)
    error = raised.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "no healthy upstream"  # not JSON


def test_grpc_health_is_not_exposed_at_the_edge(dead_envoy: EnvoyProcess) -> None:
    with grpc.insecure_channel(dead_envoy.edge_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=5, metadata=CALLER)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cors_for_the_web_page(dead_envoy: EnvoyProcess) -> None:
    origin = {"origin": PAGE_ORIGIN}
    preflight = httpx.options(
        f"{dead_envoy.edge_url}/orders",
        headers={**origin, "access-control-request-method": "POST"},
        timeout=5,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin["origin"]
    assert "POST" in preflight.headers["access-control-allow-methods"]
    # An actual request, even one that fails, carries the CORS headers the page needs to read it.
    response = httpx.get(f"{dead_envoy.edge_url}/menu", headers=origin, timeout=5)
    assert response.status_code == 503
    assert response.headers["access-control-allow-origin"] == origin["origin"]
    assert "grpc-status" in response.headers["access-control-expose-headers"]
    # Any other origin gets no CORS headers: a browser keeps its page from reading the answer.
    elsewhere = httpx.get(
        f"{dead_envoy.edge_url}/menu", headers={"origin": "https://evil.example"}, timeout=5
    )
    assert "access-control-allow-origin" not in elsewhere.headers


@pytest.mark.parametrize(
    ("path", "name", "content_type"),
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "style.css", "text/css; charset=utf-8"),
    ],
)
def test_the_page_is_served_by_the_edge_without_a_token(
    dead_envoy: EnvoyProcess, path: str, name: str, content_type: str
) -> None:
    # Every service is down: Envoy answers the page itself.
    response = httpx.get(dead_envoy.edge_url + path, timeout=5)
    assert response.status_code == 200
    assert response.content == (REPO_ROOT / "web" / name).read_bytes()
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    if name == "index.html":
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "connect-src 'self';" in policy
        assert "unsafe-inline" not in policy


def test_only_the_page_and_the_menu_need_no_token(dead_envoy: EnvoyProcess) -> None:
    # Paths beside the page's files still need a token: 401, before anything else.
    for path in ("/index.html", "/app.js.map", "/web/index.html", "/orders", "/mypages"):
        assert_json_error(httpx.get(dead_envoy.edge_url + path, timeout=5), 401, 16)


def test_no_dev_signin_without_one_in_the_topology(dead_envoy: EnvoyProcess) -> None:
    response = httpx.post(
        f"{dead_envoy.edge_url}/auth/dev-token", json={"sub": "mallory", "role": "operator"}
    )
    assert_json_error(response, 401, 16)
    # Even signed in, there is no such API.
    response = httpx.post(
        f"{dead_envoy.edge_url}/auth/dev-token",
        json={"sub": "mallory", "role": "operator"},
        headers=AUTH,
    )
    assert_json_error(response, 404, 5)


def test_dev_signin_through_the_edge(tmp_path: Path) -> None:
    server = SignInServer(("127.0.0.1", 0), ISSUER)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    topology = local_topology(dev_signin=("127.0.0.1", server.server_port))
    try:
        with start_envoy(topology, tmp_path) as envoy:
            url = f"{envoy.edge_url}/auth/dev-token"
            # A peer address a client claims is replaced by the one Envoy saw (loopback here).
            answer = httpx.post(
                url,
                json={"sub": "alice", "role": "customer"},
                headers={"x-bread-peer-address": "10.9.9.9"},
            )
            assert answer.status_code == 200, answer.text
            token = answer.json()["token"]
            # The edge takes the token: the request gets past jwt_authn to the (down) service.
            signed_in = {"authorization": f"Bearer {token}"}
            response = httpx.get(f"{envoy.edge_url}/mypages", headers=signed_in, timeout=5)
            assert_json_error(response, 503, 14)
            # The sign-in's own refusals keep the JSON error shape.
            refused = httpx.post(url, json={"sub": "alice", "role": "king"})
            assert_json_error(refused, 400, 3)
    finally:
        server.shutdown()
        server.server_close()


def test_mesh_without_pay_fails_fast(dead_envoy: EnvoyProcess) -> None:
    with grpc.insecure_channel(dead_envoy.mesh_target) as channel:
        stub = pay_pb2_grpc.PaymentServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            stub.Pay(pay_pb2.PayRequest(order_id="o1", amount=1), timeout=5)
    assert time.monotonic() - started < 0.5
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    # Only PaymentService is carried by the mesh.
    with grpc.insecure_channel(dead_envoy.mesh_target) as channel:
        other = bakery_pb2_grpc.BakeryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            other.ListTickets(bakery_pb2.ListTicketsRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ------------------------------------------------------------------ 3. a real upstream


class FakeBread(order_pb2_grpc.OrderServiceServicer, pay_pb2_grpc.PaymentServiceServicer):
    """Order and pay, small: PlaceOrder waits order_delay; Pay behaves per pay_mode."""

    def __init__(self) -> None:
        self.order_delay = 0.0
        self.pay_mode = "ok"  # ok | slow (1 s, past the 610 ms timeout) | unavailable
        self.pay_calls = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends every wait at teardown

    def GetMenu(
        self, request: order_pb2.GetMenuRequest, context: grpc.ServicerContext
    ) -> order_pb2.Menu:
        return order_pb2.Menu(items=[order_pb2.MenuItem(name="cake", price=25000)])

    def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: grpc.ServicerContext
    ) -> order_pb2.Order:
        self.release.wait(self.order_delay)
        return order_pb2.Order(
            id="o1", item=request.item, qty=request.qty, customer_id=request.customer_id
        )

    def Pay(self, request: pay_pb2.PayRequest, context: grpc.ServicerContext) -> pay_pb2.Payment:
        with self.lock:
            self.pay_calls += 1
        if self.pay_mode == "slow":
            self.release.wait(1.0)
        elif self.pay_mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "pay is failing")
        return pay_pb2.Payment(id="p1", order_id=request.order_id, amount=request.amount)


@pytest.fixture
def fake() -> Iterator[tuple[FakeBread, int]]:
    servicer = FakeBread()  # type: ignore[abstract]  # implements only what the tests call
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=128))
    order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server)
    pay_pb2_grpc.add_PaymentServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    for name in ("", "bread.order.v1.OrderService", "bread.pay.v1.PaymentService"):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        ["bread.order.v1.OrderService", "bread.pay.v1.PaymentService", reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        servicer.release.set()
        server.stop(grace=None)


@pytest.fixture
def live_envoy(fake: tuple[FakeBread, int], tmp_path: Path) -> Iterator[EnvoyProcess]:
    _, port = fake
    upstreams = dead_upstreams()
    upstreams["order"] = upstreams["pay"] = [("127.0.0.1", port)]
    topology = local_topology(place_order_timeout_ms=800)
    with start_envoy(replace(topology, upstreams=upstreams), tmp_path) as envoy:
        for cluster in ("order", "pay", "pay_mesh"):
            envoy.wait_healthy(cluster)
        yield envoy


def pay_stub(envoy: EnvoyProcess) -> tuple[grpc.Channel, pay_pb2_grpc.PaymentServiceStub]:
    channel = grpc.insecure_channel(envoy.mesh_target)
    return channel, pay_pb2_grpc.PaymentServiceStub(channel)


def test_transcoding_speaks_lower_camel_case_json(live_envoy: EnvoyProcess) -> None:
    menu = httpx.get(f"{live_envoy.edge_url}/menu", timeout=5)
    assert menu.status_code == 200
    assert menu.json() == {"items": [{"name": "cake", "price": "25000"}]}  # int64: a string
    order = httpx.post(
        f"{live_envoy.edge_url}/orders",
        json={"item": "cake", "qty": 2, "customerId": "c1"},
        headers=AUTH,
        timeout=5,
    ).json()
    assert order["customerId"] == "c1" and order["qty"] == 2
    assert order["paymentId"] == ""  # always_print_primitive_fields


def test_grpc_and_reflection_pass_through_the_edge(live_envoy: EnvoyProcess) -> None:
    with grpc.insecure_channel(live_envoy.edge_target) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        order = stub.PlaceOrder(
            order_pb2.PlaceOrderRequest(item="cake", qty=2), timeout=5, metadata=CALLER
        )
    assert order.qty == 2
    # The real grpcurl, as a user would run it (reflection is a stream: never buffered).
    grpcurl = str(Path(envoy_binary()).parent / "grpcurl")
    listed = subprocess.run(
        [grpcurl, "-plaintext", "-H", GRPCURL_AUTH, live_envoy.edge_target, "list"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert "bread.pay.v1.PaymentService" in listed.stdout.split()
    described = subprocess.run(
        [grpcurl, "-plaintext", "-H", GRPCURL_AUTH, live_envoy.edge_target, "describe", ORDER],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert "customer_id" in described.stdout


def test_edge_timeout_is_json_code_4_and_grpc_deadline_exceeded(
    fake: tuple[FakeBread, int], live_envoy: EnvoyProcess
) -> None:
    servicer, _ = fake
    servicer.order_delay = 2.0  # past the 800 ms PlaceOrder backstop of this topology
    started = time.monotonic()
    response = httpx.post(
        f"{live_envoy.edge_url}/orders", json={"item": "cake", "qty": 1}, headers=AUTH
    )
    assert 0.7 < time.monotonic() - started < 1.5
    assert_json_error(response, 504, 4)
    with grpc.insecure_channel(live_envoy.edge_target) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.PlaceOrder(
                order_pb2.PlaceOrderRequest(item="cake", qty=1), timeout=5, metadata=CALLER
            )
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_pay_timeout_ends_the_call_without_retrying_it(
    fake: tuple[FakeBread, int], live_envoy: EnvoyProcess
) -> None:
    servicer, _ = fake
    servicer.pay_mode = "slow"
    channel, stub = pay_stub(live_envoy)
    with channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            stub.Pay(pay_pb2.PayRequest(order_id="o1", amount=1), timeout=5)
        elapsed = time.monotonic() - started
    assert 0.55 < elapsed < 0.9  # the 610 ms route timeout, not the client's 5 s
    # DEADLINE_EXCEEDED, not UNAVAILABLE: order must treat the outcome as unknown.
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert servicer.pay_calls == 1  # a timeout is never retried


def test_breaker_overflow_fails_at_once(
    fake: tuple[FakeBread, int], live_envoy: EnvoyProcess
) -> None:
    servicer, _ = fake
    servicer.pay_mode = "slow"
    channel, stub = pay_stub(live_envoy)
    results: list[tuple[float, grpc.StatusCode, bool]] = []
    lock = threading.Lock()

    def done(started: float, future: grpc.Future) -> None:
        error = future.exception()
        assert isinstance(error, grpc.Call)
        overloaded = ("x-envoy-overloaded", "true") in (error.trailing_metadata() or ())
        with lock:
            results.append((time.monotonic() - started, error.code(), overloaded))

    with channel:
        calls = []
        for i in range(100):  # the seed scenario's 100 clients against max_requests 64
            started = time.monotonic()
            call = stub.Pay.future(pay_pb2.PayRequest(order_id=f"o{i}", amount=1), timeout=5)
            call.add_done_callback(lambda f, s=started: done(s, f))
            calls.append(call)
        for call in calls:
            call.exception()  # wait for all
    overflowed = [r for r in results if r[2]]
    assert len(results) == 100
    assert 30 <= len(overflowed) <= 40, results
    assert all(
        elapsed < 0.3 and code == grpc.StatusCode.UNAVAILABLE for elapsed, code, _ in overflowed
    )
    assert max(elapsed for elapsed, _, _ in results) < 1.0  # nobody waits past the timeout
    assert servicer.pay_calls <= 64
    # Counted as pending overflow while the connection to pay is still being set up
    # (max_pending_requests), as active overflow once it is up (max_requests).
    stats = live_envoy.stats("cluster.pay_mesh.upstream_rq_")
    overflow = stats["cluster.pay_mesh.upstream_rq_pending_overflow"]
    assert overflow + stats["cluster.pay_mesh.upstream_rq_active_overflow"] == len(overflowed)


def test_failing_pay_is_retried_then_ejected_then_used_again(
    fake: tuple[FakeBread, int], live_envoy: EnvoyProcess
) -> None:
    servicer, _ = fake
    servicer.pay_mode = "unavailable"
    channel, stub = pay_stub(live_envoy)
    request = pay_pb2.PayRequest(order_id="o1", amount=1)

    def pay() -> tuple[float, str]:
        started = time.monotonic()
        try:
            stub.Pay(request, timeout=5)
            details = "OK"
        except grpc.RpcError as error:
            details = str(error.details())
        return time.monotonic() - started, details

    with channel:
        assert pay()[1] == "pay is failing"
        assert servicer.pay_calls == 3  # UNAVAILABLE is retried twice (Pay is idempotent)
        pay()  # the 5th failure in a row ejects the host (the retry finds none)
        ejected_at = time.monotonic()
        assert live_envoy.host_health("pay_mesh") == {
            f"127.0.0.1:{fake[1]}": "/failed_outlier_check"
        }
        calls_when_ejected = servicer.pay_calls
        for _ in range(5):
            elapsed, details = pay()
            assert details == "no healthy upstream" and elapsed < 0.05  # panic threshold 0
        assert servicer.pay_calls == calls_when_ejected
        stats = live_envoy.stats("cluster.pay_mesh.outlier_detection.")
        assert stats["cluster.pay_mesh.outlier_detection.ejections_enforced_total"] == 1

        # Pay recovers; its health check passed all along, yet the ejection lasts
        # base_ejection_time (successful_active_health_check_uneject_host: false).
        servicer.pay_mode = "ok"
        while (result := pay())[1] != "OK":
            assert time.monotonic() - ejected_at < 8, result
            time.sleep(0.1)
        assert time.monotonic() - ejected_at > 4
