"""The benchmark's own arithmetic: a row's figures, a baseline's mean, own time in py-spy's
flame graph (its tools' parsers are harness/'s: tests/unit/test_bench_tools.py)."""

from __future__ import annotations

import pytest

from bench.benchmark import AGAIN, Row, baseline_rate
from bench.profile import frames, own_samples
from bench.soak import Sample, still_growing
from harness.tools import ToolRun


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


def test_memory_that_keeps_growing_in_the_second_half_is_not_levelled_off() -> None:
    def samples(series: list[float]) -> list[Sample]:
        return [(30.0 * i, {"order": mb}) for i, mb in enumerate(series)]

    assert still_growing(samples([58, 62, 64, 66, 68, 70, 72, 74]), "order")
    assert not still_growing(samples([58, 66, 69, 70, 70, 70.5, 70, 70.8]), "order")
    assert not still_growing(samples([67, 67, 67]), "order")  # too short to tell
