"""The load generators the benchmark trusts: wrk for HTTP/1.1, h2load for gRPC (HTTP/2).

Both are C programs (Debian's wrk and nghttp2-client packages), so the figures are the
system's, not a Python client's: each run also returns the tool's own CPU seconds (from
wait4's rusage), which the report prints beside every row.

    run = wrk("http://127.0.0.1:8088", ["/menu"], connections=64, seconds=6, token=...)
    run = h2load("http://127.0.0.1:8081/grpc.health.v1.Health/Check", grpc_frame(b""), ...)

h2load counts HTTP statuses only, and a failed gRPC call is an HTTP 200 whose trailers carry
the grpc-status: callers check that on their own (the benchmark reads Envoy's access log).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

WRK_SCRIPT = pathlib.Path(__file__).resolve().parent / "wrk.lua"
# Debian's packages; .ci/run installs them when missing.
WRK = "wrk"
H2LOAD = "h2load"


class ToolError(RuntimeError):
    """A load tool is missing, failed, or printed what we cannot read."""


@dataclass(frozen=True)
class ToolRun:
    tool: str  # the command line, shortened to what tells the run apart
    requests: int  # responses received
    ok: int  # 2xx (wrk: below 400, as wrk counts)
    non_2xx: int  # responses that are not ok
    errors: int  # no response: connect, read or write errors, timeouts
    elapsed: float  # seconds
    p50: float  # seconds, over every response
    p99: float
    cpu: float  # the tool's own CPU seconds (user + system)

    @property
    def rate(self) -> float:
        """Successful responses per second."""
        return self.ok / self.elapsed if self.elapsed else 0.0


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ToolError(
            f"{', '.join(missing)} not found: apt-get install wrk nghttp2-client (.ci/run does)"
        )


class Running:
    """A load tool started in the background; finish() waits and returns (output, CPU s)."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
        self._process = subprocess.Popen(
            self.command, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def finish(self) -> tuple[str, float]:
        # wait4, not Popen.wait: it also gives the child's rusage, i.e. the tool's own CPU.
        _, status, usage = os.wait4(self._process.pid, 0)
        self._process.returncode = os.waitstatus_to_exitcode(status)
        self._out.seek(0)
        output = self._out.read().decode(errors="replace")
        self._out.close()
        if self._process.returncode != 0:
            raise ToolError(
                f"{' '.join(self.command[:6])} ... exited "
                f"{self._process.returncode}: {output[-2000:]}"
            )
        return output, usage.ru_utime + usage.ru_stime


def wrk_command(
    base_url: str,
    paths: Sequence[str],
    *,
    method: str = "GET",
    body: str = "",
    token: str = "",
    connections: int = 64,
    threads: int = 2,
    seconds: float = 6.0,
    timeout: float = 5.0,
) -> list[str]:
    if not paths:
        raise ValueError("wrk needs at least one path")
    return [
        WRK,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        f"--timeout={max(round(timeout), 1)}s",
        "-s",
        str(WRK_SCRIPT),
        base_url,
        "--",
        method,
        token,
        body,
        *paths,
    ]


def parse_wrk(output: str, cpu: float, label: str) -> ToolRun:
    found = re.search(r"^WRK-JSON (\{.*\})$", output, re.MULTILINE)
    if not found:
        raise ToolError(f"no summary from wrk: {output[-2000:]}")
    s = json.loads(found.group(1))
    return ToolRun(
        tool=label,
        requests=s["requests"],
        ok=s["requests"] - s["status"],
        non_2xx=s["status"],
        errors=s["connect"] + s["read"] + s["write"] + s["timeout"],
        elapsed=s["duration_us"] / 1e6,
        p50=s["p50_us"] / 1e6,
        p99=s["p99_us"] / 1e6,
        cpu=cpu,
    )


def start_wrk(base_url: str, paths: Sequence[str], **options: object) -> Running:
    require(WRK)
    return Running(wrk_command(base_url, paths, **options))  # type: ignore[arg-type]


def wrk(base_url: str, paths: Sequence[str], **options: object) -> ToolRun:
    """wrk against base_url, cycling through paths; see wrk_command for the options."""
    running = start_wrk(base_url, paths, **options)
    output, cpu = running.finish()
    return parse_wrk(output, cpu, _label(running.command))


def grpc_frame(message: bytes) -> bytes:
    """A gRPC message on the wire: uncompressed flag, 4-byte big-endian length, the bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def h2load(
    url: str,
    message: bytes,
    *,
    token: str = "",
    connections: int = 8,
    streams: int = 8,
    seconds: float = 6.0,
) -> ToolRun:
    """gRPC unary calls of `message` (grpc_frame'd) to url (http://HOST:PORT/pkg.Service/Method):
    `connections` HTTP/2 connections with `streams` calls in flight on each."""
    require(H2LOAD)
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as tmp:
        body = pathlib.Path(tmp) / "body"
        body.write_bytes(message)
        log = pathlib.Path(tmp) / "requests.tsv"
        headers = ["content-type: application/grpc", "te: trailers"]
        if token:
            headers.append(f"authorization: Bearer {token}")
        command = [
            H2LOAD,
            f"-c{connections}",
            f"-m{streams}",
            f"-D{max(round(seconds), 1)}",
            "-d",
            str(body),
            *(arg for header in headers for arg in ("-H", header)),
            f"--log-file={log}",
            url,
        ]
        output, cpu = Running(command).finish()
        durations = sorted(
            int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip()
        )
    return parse_h2load(output, durations, cpu, _label(command))


def parse_h2load(output: str, durations_us: list[int], cpu: float, label: str) -> ToolRun:
    finished = re.search(r"finished in ([\d.]+)(m?s)", output)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
    )
    statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    if not (finished and counts and statuses):
        raise ToolError(f"cannot read h2load's summary: {output[-2000:]}")
    elapsed = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    done, errored, timeout = (int(counts.group(i)) for i in (3, 6, 7))
    ok = int(statuses.group(1))
    return ToolRun(
        tool=label,
        requests=done,
        ok=ok,
        non_2xx=sum(int(statuses.group(i)) for i in (2, 3, 4)),
        errors=errored + timeout,
        elapsed=elapsed,
        p50=_rank(durations_us, 50) / 1e6,
        p99=_rank(durations_us, 99) / 1e6,
        cpu=cpu,
    )


def _rank(ordered: list[int], q: int) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return 0.0
    return float(ordered[max(math.ceil(len(ordered) * q / 100) - 1, 0)])


def _label(command: Sequence[str]) -> str:
    """The tool and its load-shaping flags (-t, -c, -m, -d/-D), for the report."""
    flags = [arg for arg in command[1:] if re.fullmatch(r"-[tcmdD]\d+s?", arg)]
    return " ".join([pathlib.Path(command[0]).name, *flags])
