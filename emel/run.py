"""`python -m emel.run`: generate text from a prompt, streaming only the new text to stdout.

Follows llama.cpp's tools/completion (llama-cli) options where emel has them: -m, -p, -n, --temp,
--top-k, --top-p, --min-p, --repeat-penalty, --seed, -t, -c, and its closing perf print, here one
line on stderr (load ms, prompt tokens and tok/s, generated tokens and tok/s). `--chat` renders
the prompt as one user turn with the model's chat template. The default model (smollm2-135m) is
fetched on first use with a progress bar. When Numba's cache is cold the kernels compile first;
that is said on stderr before it starts and counted after it (emel/jit_notice.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import catalog
from .errors import EmelError, KVCacheFullError
from .jit_notice import CompileNotice, announce_compiles
from .telemetry import Telemetry, jsonl_sink

DEFAULT_MODEL = "smollm2-135m"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emel.run",
                                description="Generate text with a GGUF model (llama.cpp's behaviour).")
    p.add_argument("prompt_pos", nargs="?", metavar="PROMPT", help="the prompt (or use -p)")
    p.add_argument("-m", "--model", default=DEFAULT_MODEL,
                   help=f"GGUF path or catalog name ({', '.join(catalog.CATALOG)}); default {DEFAULT_MODEL}")
    p.add_argument("-p", "--prompt", help="the prompt")
    p.add_argument("-n", "--n-predict", type=int, default=128, help="tokens to generate (default 128)")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=-1, help="RNG seed; -1 = random (default)")
    p.add_argument("-t", "--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("-c", "--ctx-size", type=int, default=4096, help="context size (default 4096)")
    p.add_argument("--chat", action="store_true", help="treat the prompt as a user chat turn")
    p.add_argument("--perf-json", metavar="PATH", help="append perf counters as JSON lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prompt = args.prompt if args.prompt is not None else args.prompt_pos
    if prompt is None:
        prompt = ""
    tel = Telemetry(sink=jsonl_sink(args.perf_json) if args.perf_json else None)
    with announce_compiles(sys.stderr.write) as notice:
        return _run(args, prompt, tel, notice)


def _run(args: argparse.Namespace, prompt: str, tel: Telemetry, notice: CompileNotice) -> int:
    try:
        from .api import load
        model = load(args.model, n_ctx=args.ctx_size, n_threads=args.threads, progress=_bar,
                     telemetry=tel)
        sampling = dict(temperature=args.temp, top_k=args.top_k, top_p=args.top_p,
                        min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                        seed=None if args.seed == -1 else args.seed)
        n = args.n_predict
        messages = [{"role": "user", "content": prompt}]
        if n < 0:  # until end of generation or a full context, as llama.cpp's -n -1
            used = len(model._chat_tokens(messages) if args.chat
                       else model.tokenize(prompt, add_special=True, parse_special=True))
            n = max(model.n_ctx - used, 0)
        try:
            if args.chat:
                pieces = model.chat(messages, max_tokens=n,
                                    stream=True, **sampling)
            else:
                pieces = model.generate(prompt, max_tokens=n, stream=True, **sampling)
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KVCacheFullError as e:
            sys.stdout.flush()
            print(f"\n{e} => stopping", file=sys.stderr)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except EmelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    if notice.count:  # before the perf line, which stays last (as llama.cpp's)
        print(notice.summary(), file=sys.stderr)
    print(tel.summary(), file=sys.stderr)
    tel.emit("run", model=str(args.model), prompt_chars=len(prompt))
    return 0


def _bar(label: str, i: int, n: int) -> None:
    """Download progress on stderr (catalog.fetch calls it per package)."""
    width = 30
    filled = width * i // max(n, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {i}/{n} {label:<60}")
    if i >= n:
        sys.stderr.write("\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
