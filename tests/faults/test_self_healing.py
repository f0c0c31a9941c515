"""Self-healing signals with real processes: a wedged event loop fails liveness; a
database lost for good drops readiness (and it comes back with it); a lost broker
does not, and events resume by themselves; the local runner restarts a service
that exits."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import threading
from urllib.parse import urlparse

import aio_pika
import grpc

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from bread.pay.v1 import pay_pb2, pay_pb2_grpc
from harness.polling import wait_for
from harness.ports import free_port
from harness.processes import ROOT, SERVING, ServiceProcess, health_status
from harness.system import delete_broker_objects, running_system
from harness.tcp_proxy import TcpProxy
from ops.run import SUPERVISORD, program
from servicekit.server import BROKER_HEALTH
from servicekit.settings import DEFAULT_AMQP_URL

NOT_SERVING = 2


def test_wedged_event_loop_fails_liveness(tmp_path: pathlib.Path) -> None:
    with running_system(tmp_path) as system:
        pay = system.services["pay"].port
        assert health_status(pay, "") == SERVING
        with grpc.insecure_channel(f"127.0.0.1:{pay}") as channel:
            faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(
                faults_pb2.Faults(stall_loop_ms=4000), timeout=2
            )
            stalled = threading.Thread(
                target=lambda: (
                    pay_pb2_grpc.PaymentServiceStub(channel)
                    .Pay.future(
                        pay_pb2.PayRequest(order_id="wedge", customer_id="w", amount=1), timeout=10
                    )
                    .exception()
                )
            )
            stalled.start()
            wait_for(lambda: liveness_times_out(pay), timeout=3, what="pay's liveness timing out")
            assert health_status(system.services["order"].port, "") == SERVING  # only pay
            stalled.join()
            faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults_pb2.Faults(), timeout=5)
        assert health_status(pay, "") == SERVING


def liveness_times_out(port: int) -> bool:
    try:
        health_status(port, "", timeout=1)
    except grpc.RpcError as error:
        return bool(error.code() == grpc.StatusCode.DEADLINE_EXCEEDED)
    return False


def readiness(port: int, name: str) -> int:
    try:
        return health_status(port, name)
    except grpc.RpcError:
        return -1


def test_broker_lost_keeps_readiness_and_events_resume(tmp_path: pathlib.Path) -> None:
    """Without its broker, order still takes orders (readiness stays SERVING and
    Envoy keeps routing); the "broker" health name reports the loss, and once the
    broker is back the outbox flows with no restart: the bakery gets the order."""
    broker = urlparse(DEFAULT_AMQP_URL)
    with TcpProxy(broker.port or 5672) as proxy:
        via_proxy = DEFAULT_AMQP_URL.replace(f":{broker.port}/", f":{proxy.port}/")
        env = {"order": {"AMQP_URL": via_proxy, "DEPENDENCY_GRACE_SECONDS": "1"}}
        with running_system(tmp_path, extra_env=env) as system:
            order = system.services["order"]
            pid = order.process.pid if order.process else 0
            proxy.cut()
            wait_for(
                lambda: readiness(order.port, BROKER_HEALTH) == NOT_SERVING,
                timeout=10,
                what="order reporting its broker lost",
            )
            with system.client(timeout=5) as http:
                placed = http.post("/orders", json={"item": "cake", "qty": 1, "customerId": "b"})
                assert placed.status_code == 200, placed.text
                oid = placed.json()["id"]
                assert readiness(order.port, order.readiness_name) == SERVING
                assert health_status(order.port, "") == SERVING  # alive: no restart wanted
                proxy.restore()
                wait_for(
                    lambda: http.get(f"/bakeries/{oid}").status_code == 200,
                    timeout=30,
                    what="the order's event relayed once the broker is back",
                )
            wait_for(
                lambda: readiness(order.port, BROKER_HEALTH) == SERVING,
                timeout=5,
                what="order reporting its broker back",
            )
            assert order.process is not None and order.process.pid == pid


def test_database_lost_for_good_drops_readiness_until_it_is_back(tmp_path: pathlib.Path) -> None:
    with TcpProxy(5432) as proxy, running_system(tmp_path, profile="polyglot") as system:
        order = system.services["order"]
        direct = system.urls["order"]
        proxied = direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        order.kill()
        system.extra_env["order"] = {"DATABASE_URL": proxied, "DEPENDENCY_GRACE_SECONDS": "1"}
        order = system.restart("order")
        proxy.cut()
        wait_for(
            lambda: readiness(order.port, order.readiness_name) == NOT_SERVING,
            timeout=10,
            what="order NOT_SERVING without its database",
        )
        assert health_status(order.port, "") == SERVING
        proxy.restore()
        wait_for(
            lambda: readiness(order.port, order.readiness_name) == SERVING,
            timeout=15,
            what="order SERVING once its database is back",
        )


def test_local_runner_restarts_a_service_that_exits(tmp_path: pathlib.Path) -> None:
    port = free_port()
    env: dict[str, str | int] = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/bakery.db",
        "GRPC_PORT": port,
        "EVENT_EXCHANGE": f"bread-test-runner-{port}",
        "QUEUE_PREFIX": f"bread-test-runner-{port}",
    }
    config = tmp_path / "supervisord.conf"
    config.write_text(
        SUPERVISORD.format(var=tmp_path) + program("bakery", f"{sys.executable} -m bakery_svc", env)
    )
    supervisord = pathlib.Path(sys.executable).parent / "supervisord"
    runner = subprocess.Popen(
        [supervisord, "-n", "-c", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: readiness(port, "bread.bakery.v1.BakeryService") == SERVING, timeout=30)
        first = _pid_listening(port)
        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: (pid := _pid_listening(port)) and pid != first,
            timeout=30,
            what="a new bakery process",
        )
        wait_for(lambda: readiness(port, "bread.bakery.v1.BakeryService") == SERVING, timeout=30)
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(60)
        delete_broker_objects(f"bread-test-runner-{port}", f"bread-test-runner-{port}")


def _pid_listening(port: int) -> int:
    """The pid of the process that serves port (via ss, as an operator would look)."""
    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    marker = "pid="
    if marker not in out:
        return 0
    return int(out.split(marker, 1)[1].split(",", 1)[0])


def test_a_stuck_task_fails_liveness_and_the_process_exits(tmp_path: pathlib.Path) -> None:
    """A broker session that cannot start for a reason no retry changes (its queue
    exists with other arguments) is restarted with backoff, then fails liveness and
    ends the process with status 1, so supervisord or the kubelet start a new one."""
    names = f"bread-test-stuck-{free_port()}"

    async def declare_conflicting_queue() -> None:
        connection = await aio_pika.connect(DEFAULT_AMQP_URL)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(f"{names}.bakery", durable=True)  # classic, no DLX

    asyncio.run(declare_conflicting_queue())
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/bakery.db",
        "EVENT_EXCHANGE": names,
        "QUEUE_PREFIX": names,
        "STUCK_TASK_SECONDS": "2",
        "DRAIN_SECONDS": "1",
    }
    bakery = ServiceProcess("bakery", free_port(), env, tmp_path).start()
    try:
        wait_for(lambda: readiness(bakery.port, "") == NOT_SERVING, timeout=20, what="liveness")
        assert bakery.process is not None and bakery.process.wait(20) == 1
        assert "restarting the process" in bakery.log_tail(50)
    finally:
        bakery.kill()
        delete_broker_objects(names, names)
