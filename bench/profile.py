"""`make profile SERVICE=order`: a flame graph of one service under POST /orders load.

    python -m bench.profile order [--seconds 20] [--connections 64]

Starts a whole bread (as `make bench` does), puts wrk's POST /orders load on it, records the
service with py-spy (every thread, 100 samples a second, frames by function) into
var/profile-<service>.svg, and prints the functions with the most samples of their own
(the frame on top of the stack), which is where the CPU goes.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

from harness.system import running_system
from harness.tools import parse_wrk, start_wrk

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "var"
SERVICES = ("order", "pay", "bakery", "customer")
# One frame of py-spy's SVG: its title, depth (y), first sample (fg:x) and width (fg:w).
FRAME = re.compile(
    r'<title>(?P<title>[^<]*)</title><rect [^>]*?y="(?P<y>[\d.]+)"[^>]*?'
    r'fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
SAMPLES = re.compile(r" \([\d,]+ samples?, [\d.]+%\)$")


@dataclass(frozen=True)
class Frame:
    name: str
    depth: float
    x: int
    w: int


def frames(svg: str) -> list[Frame]:
    found = []
    for m in FRAME.finditer(svg):
        name = SAMPLES.sub("", m["title"]).replace("&lt;", "<").replace("&gt;", ">")
        name = name.replace("&amp;", "&").replace("&quot;", '"').replace("&apos;", "'")
        found.append(Frame(name, float(m["y"]), int(m["x"]), int(m["w"])))
    return found


def own_samples(found: list[Frame]) -> tuple[Counter[str], int]:
    """Samples per function with that function on top of the stack, and all samples.

    A frame's own samples are its width less its children's: the frames one level deeper
    that start within it.
    """
    root = next((f.depth for f in found if f.name == "all"), 0.0)
    # py-spy draws the root on top (the smallest y); the other way round would do as well.
    levels = sorted({f.depth for f in found}, reverse=root > min(f.depth for f in found))
    below = {depth: levels[i + 1] for i, depth in enumerate(levels[:-1])}
    by_depth: dict[float, list[Frame]] = {}
    for f in found:
        by_depth.setdefault(f.depth, []).append(f)
    own: Counter[str] = Counter()
    total = 0
    for f in found:
        if f.name == "all":
            total = f.w
            continue
        children = by_depth.get(below.get(f.depth, -1.0), [])
        covered = sum(c.w for c in children if f.x <= c.x < f.x + f.w)
        if f.w > covered:
            own[f.name] += f.w - covered
    return own, total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("service", choices=SERVICES)
    p.add_argument("--seconds", type=int, default=20, help="of sampling, under load")
    p.add_argument("--connections", type=int, default=64, help="wrk -c")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")
    OUT.mkdir(exist_ok=True)
    svg_path = OUT / f"profile-{args.service}.svg"
    body = json.dumps({"item": "cake", "qty": 1, "customerId": "profile"}, separators=(",", ":"))
    with (
        tempfile.TemporaryDirectory(prefix="bread-profile-") as tmp,
        running_system(pathlib.Path(tmp)) as system,
    ):
        process = system.services[args.service].process
        assert process is not None
        # wrk runs a second before and after the sampling, so py-spy sees steady load only.
        wrk = start_wrk(
            system.http,
            ["/orders"],
            method="POST",
            body=body,
            token=system.token(),
            connections=args.connections,
            seconds=args.seconds + 2,
        )
        time.sleep(1)
        spied = subprocess.run(
            [
                spy,
                "record",
                "--pid",
                str(process.pid),
                "--duration",
                str(args.seconds),
                "--rate",
                "100",
                "--function",
                "--nonblocking",
                "--format",
                "flamegraph",
                "--output",
                str(svg_path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        output, _ = wrk.finish()
    if spied.returncode != 0:
        print(spied.stdout + spied.stderr, file=sys.stderr)
        return 1
    load = parse_wrk(output, 0.0, "wrk")
    own, total = own_samples(frames(svg_path.read_text()))
    print(
        f"{args.service} under POST /orders (wrk -c{args.connections}): {load.rate:,.0f} orders/s, "
        f"p99 {load.p99 * 1e3:.0f} ms, {load.non_2xx + load.errors} not OK; "
        f"{total} samples over {args.seconds} s (every thread; idle ones left out)"
    )
    print(f"flame graph: {svg_path.relative_to(ROOT)}\n")
    print(f"{'own %':>6}  {'samples':>7}  function")
    for name, n in own.most_common(args.top):
        print(f"{100 * n / total:6.1f}  {n:7d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
