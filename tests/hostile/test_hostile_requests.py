"""A flood of hostile requests through the edge of a real system, HTTP/JSON and gRPC.

Hypothesis draws them (see corpus.py): broken, huge and deep JSON, wrong types, huge,
negative and overflowing numbers, NUL, control characters, RTL marks, lone surrogates,
emoji, unknown fields, forged identity headers, expired, unsigned and wrongly signed
tokens, customers asking for others' ids, tampered page tokens, odd paths and methods,
bytes that are not protobuf. They are sent in concurrent batches. Every answer must be
a client error, or a success for a read that is legitimately fine; never a server
error. Afterwards the same processes are running and ready, and not one stored row of
any service has changed.

The system runs the polyglot profile: order on PostgreSQL, pay on MariaDB, bakery and
customer on SQLite, so each database sees the strings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import jwt
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.polling import wait_for
from harness.system import BreadSystem, running_system
from ops.tokens import DevIssuer
from tests.hostile.corpus import GRPC_CODES, SERVER_FAULTS, Caller, Probe, Targets, all_probes
from tests.hostile.state import assert_unharmed, differences, processes, settled

pytestmark = pytest.mark.slow

# HOSTILE_REQUESTS=100000 for a longer hunt.
REQUESTS = int(os.environ.get("HOSTILE_REQUESTS", "10000"))
BATCH = 50
WORKERS = 12
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BreadSystem]:
    with running_system(tmp_path_factory.mktemp("hostile"), profile="polyglot") as bread:
        yield bread


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _hs256(claims: dict, secret: bytes) -> str:
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'bread-dev-1'})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def callers(system: BreadSystem) -> list[Caller]:
    """Good callers, callers with odd but validly signed tokens, and forged tokens."""
    issuer = system.issuer
    key = issuer.private_key_path.read_bytes()
    now = int(time.time())
    claims = {"iss": "bread-dev", "aud": "bread", "exp": now + 3600, "iat": now}

    def signed(**more: object) -> str:
        return jwt.encode(
            {**claims, **more}, key, algorithm="ES256", headers={"kid": "bread-dev-1"}
        )

    def bearer(token: str) -> str:
        return f"Bearer {token}".strip()

    good = [
        Caller("operator", bearer(issuer.token("op", "operator")), "op", "operator"),
        Caller("alice", bearer(issuer.token("alice", "customer")), "alice", "customer"),
        Caller("bob", bearer(issuer.token("bob", "customer")), "bob", "customer"),
        Caller("baker", bearer(issuer.token("bea", "baker")), "bea", "baker"),
    ]
    odd_subjects = {
        "rtl-emoji": "\u202e\U0001f35e",
        "long-subject": "s" * 2000,
        "nul-subject": "nul\x00sub",
        "newline-subject": "a\r\nx-bread-role: operator",
        "space-subject": " ",
    }
    odd = [
        Caller(name, bearer(signed(sub=sub, role="customer")), sub, "customer")
        for name, sub in odd_subjects.items()
    ]
    other_key = DevIssuer(system.tmp / "hostile-other-keys")
    forged = {
        "expired": issuer.token("mallory", "operator", ttl_seconds=-120),
        "unsigned": ".".join(
            (
                _b64({"alg": "none", "typ": "JWT"}),
                _b64({**claims, "sub": "m", "role": "operator"}),
                "",
            )
        ),
        "other-key": other_key.token("mallory", "operator"),
        "other-issuer": signed(sub="m", role="operator", iss="evil"),
        "other-audience": signed(sub="m", role="operator", aud="other"),
        "not-yet": signed(sub="m", role="operator", nbf=now + 3600),
        "no-role": signed(sub="m"),
        "admin-role": signed(sub="m", role="admin"),
        "list-role": signed(sub="m", role=["operator"]),
        "number-subject": signed(sub=12345, role="operator"),
        "no-subject": signed(role="operator"),
        "unknown-kid": jwt.encode(
            {**claims, "sub": "m", "role": "operator"}, key, algorithm="ES256", headers={"kid": "x"}
        ),
        # The public key as an HMAC secret (the algorithm confusion attack).
        "hs256": _hs256({**claims, "sub": "m", "role": "operator"}, issuer.jwks_path.read_bytes()),
        "no-signature": issuer.token("mallory", "operator").rsplit(".", 1)[0] + ".",
        "garbage": "not.a.token",
        "empty": "",  # "Bearer" alone
        "huge": "a" * 20_000,
    }
    bad = [Caller(name, f"Bearer {token}".strip()) for name, token in forged.items()]
    bad += [
        Caller("anonymous", None),
        Caller("basic", "Basic YWxpY2U6YWxpY2U="),
        Caller("bearer-twice", bearer(bearer(issuer.token("alice", "customer")))),
    ]
    # The roleless and odd-role tokens are valid to the edge, but no service accepts them.
    return good + odd + bad


def set_up(system: BreadSystem) -> Targets:
    """Orders of alice, bob and carol: some delivered (nothing may change them now), some
    paid; enough of alice's for several pages."""
    orders: dict[str, list[str]] = {"alice": [], "bob": [], "carol": []}
    payments: dict[str, list[str]] = {"alice": [], "bob": [], "carol": []}
    delivered: list[str] = []
    with system.client() as operator:
        for customer, count in (("alice", 5), ("bob", 3), ("carol", 1)):
            for n in range(count):
                placed = operator.post(
                    "/orders", json={"item": "cake", "qty": n + 1, "customerId": customer}
                )
                assert placed.status_code == 200, placed.text
                orders[customer].append(placed.json()["id"])
                payments[customer].append(placed.json()["paymentId"])
        for customer in ("alice", "bob"):
            order = orders[customer][0]
            wait_for(
                lambda o=order: operator.get(f"/bakeries/{o}").status_code == 200,  # type: ignore[misc]
                what="the ticket",
            )
            for action in ("accept", "deliver"):
                done = operator.post(f"/bakeries/{order}:{action}", json={})
                assert done.status_code == 200, done.text
            delivered.append(order)
        page = operator.get("/orders", params={"customerId": "alice", "pageSize": 2}).json()
        tokens = [page["nextPageToken"]]
    return Targets(callers(system), orders, payments, delivered, tokens)


class Sender:
    """Sends probes from a pool of threads, each with its own HTTP client."""

    def __init__(self, system: BreadSystem) -> None:
        self.system = system
        self.local = threading.local()
        self.channel = grpc.insecure_channel(
            system.gateway,
            options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)],
        )
        self.pool = ThreadPoolExecutor(WORKERS)

    def http(self) -> httpx.Client:
        if not hasattr(self.local, "http"):
            self.local.http = httpx.Client(base_url=self.system.http, timeout=TIMEOUT)
        client: httpx.Client = self.local.http
        return client

    def send(self, probe: Probe) -> tuple[str, bool, str, bytes | None]:
        """(histogram label, a server error?, detail, the success' body)."""
        if probe.via == "http":
            return self._http(probe)
        return self._grpc(probe)

    def _http(self, probe: Probe) -> tuple[str, bool, str, bytes | None]:
        headers = [
            (k.encode(), v if isinstance(v, bytes) else v.encode("latin-1"))
            for k, v in probe.headers
        ]
        request = self.http().build_request(
            probe.method, probe.path, headers=headers, content=probe.body
        )
        try:
            response = self.http().send(request)
        except httpx.LocalProtocolError as error:  # the client would not send it
            return "unsendable", False, str(error), None
        grpc_status = response.headers.get("grpc-status")
        if grpc_status is not None and response.status_code == 200 and grpc_status != "0":
            # gRPC over HTTP/1.1: the status is a header of a trailers-only answer.
            code = GRPC_CODES.get(int(grpc_status), grpc.StatusCode.UNKNOWN)
            detail = response.headers.get("grpc-message", "")
            return f"http-grpc {code.name}", code in SERVER_FAULTS, detail, None
        status = response.status_code
        body = response.content if status == 200 else None
        return f"http {status}", status >= 500, response.text[:300], body

    def _grpc(self, probe: Probe) -> tuple[str, bool, str, bytes | None]:
        call = self.channel.unary_unary(
            probe.method, request_serializer=bytes, response_deserializer=bytes
        )
        try:
            answer = call(probe.body, metadata=probe.headers, timeout=TIMEOUT)
        except grpc.RpcError as error:
            code = error.code()
            detail = str(error.details())
            return f"grpc {code.name}", code in SERVER_FAULTS, detail[:300], None
        return "grpc OK", False, "", answer

    def close(self) -> None:
        self.pool.shutdown()
        self.channel.close()


def problems(
    probe: Probe, label: str, server_error: bool, detail: str, body: bytes | None
) -> list[str]:
    found = []
    code = label.split()[-1]
    ok = code in ("200", "OK")
    if server_error:
        found.append("server error")
    if probe.write and ok:
        found.append("a write that had to be refused succeeded")
    if probe.expect and code not in {str(e) for e in probe.expect}:
        found.append(f"expected {sorted(map(str, probe.expect))}")
    if ok and body is not None and probe.caller.role == "customer":
        owners = _owners(probe, body)
        if owners - {probe.caller.subject}:
            found.append(f"a customer was shown others' rows: {owners}")
    return [f"{what}: {label} {detail!r} for {probe.describe()}" for what in found]


def _owners(probe: Probe, body: bytes) -> set[str | None]:
    if probe.response_type is None:
        return set()
    if probe.via == "grpc":
        message = probe.response_type.FromString(body)
        rows = next(iter(f for f, _ in message.ListFields() if f.is_repeated), None)
        return {row.customer_id for row in getattr(message, rows.name)} if rows else set()
    document = json.loads(body)
    lists = [v for v in document.values() if isinstance(v, list)]
    return {row.get("customerId") for rows in lists for row in rows}


def summary(failures: list[str]) -> str:
    """Failures by kind (what, status, the start of the message), one example each."""
    kinds: dict[str, list[str]] = {}
    for failure in failures:
        kind = re.sub(r"[0-9a-f]{12}", "…", failure.split(" for ", 1)[0])[:160]
        kinds.setdefault(kind, []).append(failure)
    lines = [f"{len(failures)} failures of {len(kinds)} kinds:"]
    for kind, found in sorted(kinds.items(), key=lambda k: -len(k[1])):
        lines += [f"{len(found):5} x {kind}", f"        e.g. {found[0][:1500]}"]
    return "\n".join(lines)


def test_hostile_requests_get_client_errors_and_change_nothing(
    system: BreadSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = set_up(system)
    before = settled(system)
    pids = processes(system)
    sender = Sender(system)
    histogram: Counter[str] = Counter()
    examples: dict[str, str] = {}
    failures: list[str] = []
    started = time.monotonic()

    @settings(
        max_examples=REQUESTS // BATCH + 1,
        deadline=None,
        database=None,
        # Every failing request is reported as it is; shrinking would replay batches.
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(all_probes(targets), min_size=BATCH, max_size=BATCH))
    def flood(batch: list[Probe]) -> None:
        answers = list(sender.pool.map(sender.send, batch))
        found = []
        for probe, (label, server_error, detail, body) in zip(batch, answers, strict=True):
            histogram[label] += 1
            examples.setdefault(label, detail)
            found += problems(probe, label, server_error, detail, body)
        # Collected, not asserted: one run shows every kind of failure at once.
        failures.extend(found)

    try:
        while (
            sum(n for label, n in histogram.items() if label != "unsendable") < REQUESTS
            and len(failures) < 500
        ):
            flood()
    finally:
        sender.close()
        elapsed = time.monotonic() - started
        with capsys.disabled():
            print(f"\n{sum(histogram.values())} hostile requests in {elapsed:.0f} s:")
            for label, count in sorted(histogram.items()):
                print(f"  {label:28} {count:6}  e.g. {examples[label][:70]!r}")
    assert not failures, summary(failures)
    assert_unharmed(system, pids)
    after = settled(system)
    assert not (changed := differences(before, after)), changed
    with capsys.disabled():
        rows = sum(len(r) for tables in after.values() for r in tables.values())
        print(f"  the same {len(pids)} processes, all ready; {rows} stored rows unchanged")
