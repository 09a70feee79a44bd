"""Smoke tests of `python -m emel.bench -m MODEL` (emel/bench/model.py): the harness logic on
scripted runners, and one real 2-token prefill + 1-token decode. No timing assertions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emel.bench import model as bm


class _Scripted:
    """A runner whose runs take the scripted seconds, recording every call."""

    def __init__(self, name, seconds, calls):
        self.name, self.seconds, self.calls = name, list(seconds), calls

    def set_threads(self, n_threads):
        self.calls.append((self.name, "threads", n_threads))

    def pp(self, tokens, n_batch):
        self.calls.append((self.name, "pp", len(tokens), n_batch))
        return self.seconds.pop(0)

    def tg(self, tokens):
        self.calls.append((self.name, "tg", len(tokens)))
        return self.seconds.pop(0)


def test_runs_warm_up_then_alternate_engines_and_report_median_min_max():
    calls = []
    # first value of each list is the warm-up, which must not count
    a = _Scripted("emel", [100.0, 1.0, 4.0, 2.0], calls)
    b = _Scripted("llama.cpp", [100.0, 0.5, 0.25, 1.0], calls)
    res = bm.run_test([a, b], "m", "pp", np.arange(8, dtype=np.int32), 4, reps=3, threads=2)
    assert [c[0] for c in calls] == ["emel", "llama.cpp",  # warm-up
                                     "emel", "llama.cpp", "llama.cpp", "emel", "emel", "llama.cpp"]
    assert all(c[1:] == ("pp", 8, 4) for c in calls)
    assert [r.test for r in res] == ["pp8", "pp8"]
    assert res[0].tok_s() == (4.0, 2.0, 8.0)  # 8 tokens in 1, 4, 2 s
    assert res[1].tok_s() == (16.0, 8.0, 32.0)
    machine = dict(bm.machine_info(), loadavg_start=[1.0, 1.0, 1.0], loadavg_end=[1.0, 1.0, 1.0])
    (line,) = bm.json_lines(res, [], machine, {"m": {"threading_layer": "omp"}})
    assert {"model", "test", "threads", "tok_s", "tok_s_min", "tok_s_max"} <= line.keys()
    assert (line["model"], line["test"], line["threads"]) == ("m", "pp8", 2)
    assert line["ratio"] == pytest.approx(4.0 / 16.0)
    json.dumps(line)


def test_tg_warm_up_decodes_one_token():
    calls = []
    r = _Scripted("emel", [9.0, 1.0], calls)
    (res,) = bm.run_test([r], "m", "tg", np.zeros(3, dtype=np.int32), 512, reps=1, threads=1)
    assert calls == [("emel", "tg", 1), ("emel", "tg", 3)]
    assert res.test == "tg3" and res.tok_s()[0] == 3.0


def test_ratios_pair_runs_of_the_same_thread_count():
    res = [bm.TestResult("m", "tg4", "emel", 2, 4, [2.0]),
           bm.TestResult("m", "tg4", "llama.cpp", 2, 4, [1.0]),
           bm.TestResult("m", "tg4", "emel", 1, 4, [1.0]),
           bm.TestResult("m", "tg4", "llama.cpp", 1, 4, [4.0])]
    machine = dict(bm.machine_info(), loadavg_start=[1.0] * 3, loadavg_end=[1.0] * 3)
    lines = bm.json_lines(res, [], machine, {})
    assert [(d["threads"], d["ratio"]) for d in lines] == [(2, 0.5), (1, 4.0)]


def test_flash_attention_llama_cpp_gets_its_own_ratio_column(tmp_path):
    assert bm._llama_cpp_configs("both") == [("llama.cpp", bm.FLASH_ATTN_OFF),
                                             ("llama.cpp-fa", bm.FLASH_ATTN_AUTO)]
    assert bm._llama_cpp_configs("auto") == [("llama.cpp", bm.FLASH_ATTN_AUTO)]
    res = [bm.TestResult("m", "pp4", "emel", 2, 4, [2.0]),
           bm.TestResult("m", "pp4", "llama.cpp", 2, 4, [1.0]),
           bm.TestResult("m", "pp4", "llama.cpp-fa", 2, 4, [0.5])]
    machine = dict(bm.machine_info(), loadavg_start=[1.0] * 3, loadavg_end=[1.0] * 3)
    extras = {"m": {"llama_cpp": {"version": "v", "flash_attn_type": 0, "system_info": ""},
                    "llama_cpp_fa": {"version": "v", "flash_attn_type": -1, "system_info": ""}}}
    (d,) = bm.json_lines(res, [], machine, extras)
    assert (d["ratio"], d["ratio_fa"]) == (0.5, 0.25)
    assert (d["llama_cpp_flash_attn_type"], d["llama_cpp_fa_flash_attn_type"]) == (0, -1)
    assert "| 2.00 (2.00 - 2.00) | 4.00 (4.00 - 4.00) | 0.500 | 8.00 (8.00 - 8.00) | 0.250 |" \
        in bm.format_table(res, [], machine, extras)
    path = tmp_path / "benchmarks.md"
    bm.write_plans(path, res, [], machine, extras)
    assert "| 4.00 (4.00 - 4.00) | 0.500 | 8.00 (8.00 - 8.00) | 0.250 |" in path.read_text()


def test_write_plans_keeps_rows_of_earlier_runs(tmp_path):
    path = tmp_path / "benchmarks.md"
    machine = dict(bm.machine_info(), loadavg_start=[2.0, 2, 2], loadavg_end=[3.0, 3, 3])
    for name, secs in (("alpha", 2.0), ("beta", 4.0)):
        res = [bm.TestResult(name, "tg4", "emel", 2, 4, [secs]),
               bm.TestResult(name, "tg4", "llama.cpp", 2, 4, [1.0])]
        lat = {"model": name, "test": "first_token_p16", "cold_s": 30.0, "warm_s": 3.0,
               "warm_import_s": 1.0, "warm_load_s": 1.0, "peak_rss_bytes": 300 * 2**20,
               "cold_peak_rss_bytes": 600 * 2**20, "rss_budget_bytes": 400 * 2**20,
               "rss_within_budget": True, "file_bytes": 100 * 2**20, "kv_bytes_f16": 2**20}
        bm.write_plans(path, res, [lat], machine, {name: {"threading_layer": "omp"}})
    text = path.read_text()
    data = bm.read_plans_data(path)
    policy = machine["omp_wait_policy"]
    assert set(data["throughput"]) == {f"alpha|tg4|2|{policy}", f"beta|tg4|2|{policy}"}
    assert data["throughput"][f"beta|tg4|2|{policy}"]["ratio"] == pytest.approx(0.25)
    assert "| alpha | tg4 | 2 | 2.00 (2.00 - 2.00) | 4.00 (4.00 - 4.00) | 0.500 | - | - |" in text
    assert set(data["latency"]) == {"alpha", "beta"} and "peak RSS 300 MiB" in text


def test_subprocess_scripts_compile():
    compile(bm.WORKER_SRC, "llama_cpp_worker", "exec")
    compile(bm._EMEL_FIRST_TOKEN_SRC, "emel_first_token", "exec")


@pytest.mark.slow
def test_bench_runs_emel_on_a_real_model(capsys):
    rc = bm.main(["-m", "smollm2-135m", "-p", "2", "-n", "1", "-r", "1", "--json",
                  "--no-latency"])
    assert rc == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [(d["test"], d["threads"]) for d in lines] == [("pp2", 2), ("tg1", 2)]
    assert all(d["tok_s_min"] <= d["tok_s"] <= d["tok_s_max"] and d["tok_s"] > 0 for d in lines)
    assert lines[0]["model"] == "smollm2-135m" and lines[0]["threading_layer"]
