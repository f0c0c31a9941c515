"""How the benchmark reads its tools: wrk's and h2load's summaries, the gRPC frame h2load
sends, a row's figures, py-spy's flame graph, and when a queue counts as growing."""

from __future__ import annotations

import pytest

from bench.benchmark import AGAIN, Row, baseline_rate
from bench.profile import frames, own_samples
from bench.queues import growing
from bench.tools import ToolError, ToolRun, grpc_frame, parse_h2load, parse_wrk, wrk_command

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


def test_a_row_counts_a_failed_grpc_status_as_not_ok_and_cpu_per_response() -> None:
    run = ToolRun(
        "h2load",
        requests=100,
        ok=100,
        non_2xx=0,
        errors=0,
        elapsed=2.0,
        p50=0.01,
        p99=0.02,
        cpu=0.1,
    )
    row = Row("PlaceOrder", "gRPC", "health", run, cpu={"order": 0.2}, grpc_failed=10)
    assert (row.ok, row.not_ok, row.rate) == (90, 10, 45.0)
    assert row.cpu_ms("order") == pytest.approx(2.0) and row.cpu_ms("pay") == 0.0


def test_a_baseline_is_the_mean_of_its_two_runs() -> None:
    def row(name: str, ok: int) -> Row:
        run = ToolRun("wrk", ok, ok, 0, 0, elapsed=1.0, p50=0.0, p99=0.0, cpu=0.0)
        return Row(name, "", "", run, cpu={})

    done = [row("menu", 1000), row("orders", 50), row("menu" + AGAIN, 600)]
    assert baseline_rate(done, "menu") == 800.0
    assert baseline_rate(done, "health") == 0.0


def test_grpc_frame_is_flag_length_message() -> None:
    assert grpc_frame(b"") == b"\x00\x00\x00\x00\x00"
    assert grpc_frame(b"\x0a\x01x") == b"\x00\x00\x00\x00\x03\x0a\x01x"


SVG = """<svg>
<g><title>all (10 samples, 100%)</title><rect x="0%" y="52" width="100%" height="15" \
fg:x="0" fg:w="10"/></g>
<g><title>main (app.py:1) (10 samples, 100.00%)</title><rect x="0%" y="68" width="100%" \
height="15" fill="red" fg:x="0" fg:w="10"/></g>
<g><title>&lt;lambda&gt; (app.py:5) (6 samples, 60.00%)</title><rect x="0%" y="84" \
width="60%" height="15" fill="red" fg:x="0" fg:w="6"/></g>
<g><title>leaf (app.py:9) (2 samples, 20.00%)</title><rect x="60%" y="84" width="20%" \
height="15" fill="red" fg:x="6" fg:w="2"/></g>
<g><title>leaf (app.py:9) (1 samples, 10.00%)</title><rect x="0%" y="100" width="10%" \
height="15" fill="red" fg:x="0" fg:w="1"/></g>
</svg>"""


def test_own_samples_are_a_frames_width_less_its_childrens() -> None:
    own, total = own_samples(frames(SVG))
    assert total == 10
    assert own == {"<lambda> (app.py:5)": 5, "main (app.py:1)": 2, "leaf (app.py:9)": 3}


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
