"""The first-token process of emel.bench reports RSS after each step, and the bench prints it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emel.bench import model as bm

ROOT = Path(__file__).resolve().parents[2]


def test_latency_line_names_the_rss_after_each_step():
    mib = 2**20
    lat = {"model": "m", "test": "first_token_p16", "cold_s": 30.0, "warm_s": 3.0,
           "warm_import_s": 1.0, "warm_load_s": 1.0, "peak_rss_bytes": 330 * mib,
           "cold_peak_rss_bytes": 600 * mib, "rss_budget_bytes": 311 * mib,
           "rss_within_budget": False, "file_bytes": 94 * mib, "kv_bytes_f16": 17 * mib,
           "rss_stages_bytes": {"import": {"VmRSS": 165 * mib, "VmHWM": 165 * mib},
                                "load": {"VmRSS": 270 * mib, "VmHWM": 274 * mib},
                                "second_token": {"VmRSS": 330 * mib, "VmHWM": 330 * mib}}}
    line = bm._latency_line(lat)
    assert "peak RSS 330 MiB" in line and "OVER" in line
    assert line.endswith("RSS after import 165, load 270 [274], second token 330 MiB")
    del lat["rss_stages_bytes"]  # records of earlier runs have no steps
    assert "RSS after" not in bm._latency_line(lat)


@pytest.mark.slow
def test_first_token_process_reports_rss_per_step(smollm2_path):
    cfg = {"model": str(smollm2_path), "n_ctx": 64, "threads": 1, "device": "cpu",
           "text": "The capital of France is", "n_prompt": 4}
    proc = subprocess.run([sys.executable, "-c", bm._EMEL_FIRST_TOKEN_SRC, json.dumps(cfg)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    stages = r["rss_stages_kb"]
    assert list(stages) == ["import", "load", "first_token", "second_token"]
    rss = [stages[k]["VmRSS"] for k in stages]
    hwm = [stages[k]["VmHWM"] for k in stages]
    assert all(a <= b for a, b in zip(hwm, hwm[1:])) and all(r <= h for r, h in zip(rss, hwm))
    assert hwm[-1] <= r["maxrss_kb"]
    # the mapped model file is resident after the load
    assert stages["load"]["VmRSS"] - stages["import"]["VmRSS"] >= smollm2_path.stat().st_size // 1024 * 0.9
