"""`python -m emel.run`: llama.cpp's greedy continuation on stdout, one perf line on stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emel import run


def test_help_runs_as_a_module():
    res = subprocess.run([sys.executable, "-m", "emel.run", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "--perf-json" in res.stdout and "--chat" in res.stdout


def test_parser_defaults_are_llama_cpps():
    a = run.build_parser().parse_args([])
    assert (a.model, a.n_predict, a.temp, a.top_k, a.top_p, a.min_p, a.repeat_penalty,
            a.seed) == ("smollm2-135m", 128, 0.8, 40, 0.95, 0.05, 1.0, -1)


def test_bad_model_is_a_clean_error(capsys):
    assert run.main(["-m", "/nonexistent/model.gguf", "-p", "x"]) == 1
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_greedy_cli_prints_llama_cpps_continuation(smollm2_path, fixtures_dir, tmp_path, capsys):
    rec = json.loads((fixtures_dir / "generate" / "generate.json").read_text())
    rec = rec["models"]["smollm2-135m"]["greedy"][0]
    perf = tmp_path / "perf.jsonl"
    code = run.main(["-m", str(smollm2_path), "-p", rec["prompt"], "-n", "32", "--temp", "0",
                     "-c", "512", "--perf-json", str(perf)])
    out = capsys.readouterr()
    assert code == 0
    assert out.out == rec["text"] + "\n"
    lines = out.err.strip().splitlines()
    assert lines[-1].startswith("load ") and "tok/s" in lines[-1]
    recs = [json.loads(line) for line in perf.read_text().splitlines()]
    assert recs[-1]["n_gen"] == 31 and recs[-1]["n_prompt"] == len(rec["prompt_tokens"])
