"""`make observe`: its Prometheus configuration is one promtool accepts, with the alert rules,
and it scrapes every replica slot of `make run` on the metrics port each is given."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ops import observe
from ops.run import supervisord_config
from servicekit.registry import NAMES


def test_every_slot_make_run_starts_is_scraped_where_it_serves_metrics(tmp_path: Path) -> None:
    programs = supervisord_config(
        "default", tmp_path / "envoy.yaml", replicas=1, trace_ratio=1.0, otlp_endpoint=""
    )
    served = {
        int(line.split('METRICS_PORT="')[1].split('"')[0])
        for line in programs.splitlines()
        if "METRICS_PORT=" in line
    }
    [bread] = [job for job in observe.config()["scrape_configs"] if job["job_name"] == "bread"]  # type: ignore[attr-defined]
    scraped = {
        int(target.rpartition(":")[2]): group["labels"]["service"]
        for group in bread["static_configs"]
        for target in group["targets"]
    }
    assert set(scraped) == served and len(served) == 3 * len(NAMES)
    assert scraped[9081] == "order" and scraped[9084] == "customer"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian's prometheus package")
def test_promtool_accepts_the_configuration_and_its_rules(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(observe.config()))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(observe.ALERTS) in result.stdout  # the rules were checked too
