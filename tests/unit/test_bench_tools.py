"""How the harness reads its load tools: wrk's and h2load's summaries, the gRPC frame h2load
sends, and when a queue counts as growing."""

from __future__ import annotations

import pytest

from harness.queues import growing
from harness.tools import ToolError, grpc_frame, parse_h2load, parse_wrk, wrk_command

WRK_OUTPUT = """Running 6s test @ http://127.0.0.1:8088
  2 threads and 64 connections
  6012 requests in 6.01s, 1.20MB read
  Non-2xx or 3xx responses: 12
WRK-JSON {"requests": 6012, "duration_us": 6010000, "bytes": 1200000, "connect": 0, \
"read": 3, "write": 0, "status": 12, "timeout": 1, "p50_us": 9500, "p99_us": 42000, \
"max_us": 80000}
"""

H2LOAD_OUTPUT = """starting benchmark...
spawning thread #0: 8 total client(s). Timing-based test with 0s of warm-up time and 6s of \
main duration for measurements.
finished in 6.00s, 1000.50 req/s, 60.12KB/s
requests: 6003 total, 6067 started, 6003 done, 5990 succeeded, 13 failed, 2 errored, 1 timeout
status codes: 5990 2xx, 0 3xx, 4 4xx, 6 5xx
traffic: 360.74KB (369397) total, 12.04KB (12330) headers (space savings 92.11%)
"""


def test_wrk_summary() -> None:
    run = parse_wrk(WRK_OUTPUT, cpu=0.5, label="wrk -t2 -c64 -d6s")
    assert (run.requests, run.ok, run.non_2xx, run.errors) == (6012, 6000, 12, 4)
    assert run.elapsed == pytest.approx(6.01)
    assert (run.p50, run.p99) == (pytest.approx(0.0095), pytest.approx(0.042))
    assert run.rate == pytest.approx(6000 / 6.01)


def test_wrk_without_summary_is_an_error() -> None:
    with pytest.raises(ToolError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused", 0.0, "wrk")


def test_wrk_command_passes_method_token_body_and_paths_to_the_script() -> None:
    command = wrk_command("http://e", ["/a", "/b"], method="POST", body="{}", token="t", seconds=2)
    assert command[command.index("--") + 1 :] == ["POST", "t", "{}", "/a", "/b"]
    assert "-d2s" in command and "-c64" in command


def test_h2load_summary_and_percentiles_from_its_log() -> None:
    durations = sorted([1000 * i for i in range(1, 101)])  # 1..100 ms
    run = parse_h2load(H2LOAD_OUTPUT, durations, cpu=0.2, label="h2load")
    assert (run.requests, run.ok, run.non_2xx, run.errors) == (6003, 5990, 10, 3)
    assert run.elapsed == 6.0
    assert (run.p50, run.p99) == (0.05, 0.099)


def test_grpc_frame_is_flag_length_message() -> None:
    assert grpc_frame(b"") == b"\x00\x00\x00\x00\x00"
    assert grpc_frame(b"\x0a\x01x") == b"\x00\x00\x00\x00\x03\x0a\x01x"


@pytest.mark.parametrize(
    ("depths", "grows"),
    [
        ([0, 300, 600, 900, 1200, 1500], True),  # falls further behind all along
        ([0, 1600, 900, 400, 300, 200], False),  # a burst, then catching up
        ([0, 500, 520, 480, 510, 530], False),  # steady
        ([0, 0, 0, 0, 0, 0], False),
    ],
)
def test_a_queue_grows_when_it_ends_at_its_deepest_well_above_its_first_half(
    depths: list[int], grows: bool
) -> None:
    samples = [(5.0 * i, {"q": d}) for i, d in enumerate(depths)]
    assert growing(samples, "q") is grows
