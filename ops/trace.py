"""`make trace ORDER=<id>`: an order's traces as span trees with durations.

    python -m ops.trace ORDER_ID [--file var/traces.jsonl]

Reads the JSON-lines trace file the services and the edge write under `make run`
(servicekit/tracing.py, ops/trace_sink.py): every trace with a span about the order
(attribute bread.order_id: its events' publish and apply spans, pay's call), each span
under its parent, with its start after the trace's first span and its duration.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from servicekit.tracing import ORDER_ID

Span = dict[str, Any]


def read_spans(lines: Iterable[str]) -> list[Span]:
    spans = []
    for line in lines:
        try:
            span = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a process killed mid-write
        if isinstance(span, dict) and "trace_id" in span:
            spans.append(span)
    return spans


def order_traces(spans: list[Span], order_id: str) -> dict[str, list[Span]]:
    """The spans of every trace that has a span about order_id, by trace id, oldest first."""
    wanted = {s["trace_id"] for s in spans if s.get("attributes", {}).get(ORDER_ID) == order_id}
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        if span["trace_id"] in wanted:
            traces[span["trace_id"]].append(span)
    return dict(sorted(traces.items(), key=lambda item: min(s["start_ns"] for s in item[1])))


def render(trace_id: str, spans: list[Span]) -> Iterator[str]:
    """One trace as an indented tree: offset from its start, duration, name, service."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Span]] = defaultdict(list)
    for span in spans:
        # A parent that is not in the file (an edge that reports elsewhere) makes a root.
        children[span["parent_id"] if span["parent_id"] in ids else None].append(span)
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] for s in spans)
    services = sorted({s["service"] for s in spans})
    yield (
        f"trace {trace_id}: {len(spans)} spans, {(end - start) / 1e6:.1f} ms, {', '.join(services)}"
    )

    def walk(parent: str | None, depth: int) -> Iterator[str]:
        for span in sorted(children[parent], key=lambda s: s["start_ns"]):
            offset = (span["start_ns"] - start) / 1e6
            duration = (span["end_ns"] - span["start_ns"]) / 1e6
            error = "  ERROR" if span.get("status") == "ERROR" else ""
            orphan = "  (parent not recorded)" if depth == 0 and span["parent_id"] else ""
            yield (
                f"  +{offset:8.1f} ms {duration:8.1f} ms  {'  ' * depth}{span['name']}"
                f"  [{span['service']} {span['kind'].lower()}]{error}{orphan}"
            )
            yield from walk(span["span_id"], depth + 1)

    yield from walk(None, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, prog="make trace")
    parser.add_argument("order_id")
    parser.add_argument("--file", type=pathlib.Path, default=pathlib.Path("var/traces.jsonl"))
    args = parser.parse_args()
    if not args.file.exists():
        print(f"no trace file at {args.file}: is `make run` tracing?", file=sys.stderr)
        return 1
    with args.file.open(encoding="utf-8") as lines:
        traces = order_traces(read_spans(lines), args.order_id)
    if not traces:
        print(f"no trace of order {args.order_id} in {args.file} (sampled out?)", file=sys.stderr)
        return 1
    for trace_id, spans in traces.items():
        print("\n".join(render(trace_id, spans)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
