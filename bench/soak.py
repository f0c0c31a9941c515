"""`make soak`: does memory level off under steady load?

    python -m bench.soak [--minutes 30] [--rate 50] [--every 30]

One whole bread (harness.system) takes orders through the edge at a steady rate
(harness.load, paced) for --minutes; every --every seconds each process's resident
memory is printed. At the end: each process's RSS over the first and the last
quarter of the run, and whether it still grew in the second half by more than a
tenth of its first half's growth plus 2 MB (allocator noise), which is "not
levelled off". The money invariants are checked over every order at the end. The report
goes to stdout and to bench/results/soak.md.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import threading
import time

from bench.benchmark import system_pids
from bench.procstat import memory_mb
from harness.invariants import wait_settled
from harness.load import LoadConfig, LoadResult, run
from harness.system import running_system

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
Sample = tuple[float, dict[str, float]]  # (seconds since the start, process -> RSS MB)


def still_growing(samples: list[Sample], name: str) -> bool:
    """Whether name's RSS grew in the run's second half by more than a tenth of its first
    half's growth plus 2 MB."""
    half = len(samples) // 2
    if half < 2:
        return False
    first = [rss[name] for _, rss in samples[: half + 1]]
    second = [rss[name] for _, rss in samples[half:]]
    growth_first = max(first) - first[0]
    growth_second = max(second) - max(first)
    return growth_second > 0.1 * max(growth_first, 0.0) + 2.0


def report(samples: list[Sample]) -> list[str]:
    names = list(samples[0][1])
    quarter = max(len(samples) // 4, 1)
    lines = [
        "| process | RSS MB at the start | mean, first quarter | mean, last quarter "
        "| peak | levelled off |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        series = [rss[name] for _, rss in samples]
        first = sum(series[:quarter]) / quarter
        last = sum(series[-quarter:]) / quarter
        flat = "no, still growing" if still_growing(samples, name) else "yes"
        lines.append(
            f"| {name} | {series[0]:.1f} | {first:.1f} | {last:.1f} | {max(series):.1f} | {flat} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=50.0, help="orders per second")
    p.add_argument("--every", type=float, default=30.0, help="seconds between two samples")
    args = p.parse_args(argv)
    seconds = args.minutes * 60
    with (
        tempfile.TemporaryDirectory(prefix="bread-soak-") as tmp,
        running_system(pathlib.Path(tmp)) as system,
    ):
        pids = system_pids(system)
        config = LoadConfig(
            target=system.gateway,
            concurrency=16,
            duration=seconds,
            token=system.token(),
            protocol="http",
            mix="place",
            rate=args.rate,
            customer_id="soak",
        )
        box: dict[str, LoadResult] = {}
        load = threading.Thread(target=lambda: box.update(result=run(config)), daemon=True)
        started = time.monotonic()
        load.start()
        samples: list[Sample] = []
        while load.is_alive():
            at = time.monotonic() - started
            samples.append((at, {name: memory_mb(pid)[0] for name, pid in pids.items()}))
            print(
                f"{at:6.0f} s  "
                + "  ".join(f"{name} {rss:5.1f}" for name, rss in samples[-1][1].items()),
                flush=True,
            )
            load.join(args.every)
        result = box["result"]
        settled = wait_settled(system.urls)
    text = "\n".join(
        [
            f"# make soak: {args.minutes:g} minutes at up to {args.rate:g} orders/s",
            "",
            "```",
            result.summary(f"{args.minutes:g} minutes at up to {args.rate:g} orders/s"),
            "```",
            "",
            *report(samples),
            "",
            "Money invariants over every order: " + settled.summary().replace("\n", "; "),
            "",
            "RSS every sample (MB):",
            "",
            "```",
            *(
                f"{at:6.0f} s  " + "  ".join(f"{name} {mb:5.1f}" for name, mb in rss.items())
                for at, rss in samples
            ),
            "```",
            "",
        ]
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.md").write_text(text)
    return 0 if settled.ok and samples else 1


if __name__ == "__main__":
    sys.exit(main())
