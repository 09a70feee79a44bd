"""Port llama.cpp's Unicode tables (src/unicode-data.cpp) to emel/tokenizer/unicode_data.py.

llama.cpp's tables were generated from a newer Unicode version than Python 3.11's `unicodedata`
(14.0): 5116 codepoints differ in category, so the data is ported rather than regenerated.

Usage: python parity_fixtures/tokenizer/gen_unicode_data.py [path/to/unicode-data.cpp]
"""

from __future__ import annotations

import base64
import re
import sys
import zlib
from pathlib import Path

DEFAULT = Path.home() / ".cache/emel-ref/llama_cpp_python-0.3.36/vendor/llama.cpp/src/unicode-data.cpp"
OUT = Path(__file__).resolve().parents[2] / "emel" / "tokenizer" / "unicode_data.py"


def _block(src: str, name: str) -> str:
    start = src.index(name)
    return src[start:src.index("};", start)]


def _ints(text: str) -> list[int]:
    return [int(x, 16) for x in re.findall(r"0x([0-9A-Fa-f]+)", text)]


def _fmt(name: str, values: list[int], per_line: int = 96) -> str:
    """values as base64 of zlib-compressed little-endian uint32: one string constant, which
    Python compiles in ~1 MB where tuples of 16k int literals took ~80 MB (no .pyc written)."""
    packed = base64.b64encode(zlib.compress(b"".join(v.to_bytes(4, "little") for v in values), 9))
    text = packed.decode("ascii")
    lines = [f"{name} = (  # {len(values)} values"]
    for i in range(0, len(text), per_line):
        lines.append(f'    "{text[i:i + per_line]}"')
    lines.append(")")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    src_path = Path(argv[0]) if argv else DEFAULT
    src = src_path.read_text()
    flags = _ints(_block(src, "unicode_ranges_flags = {").split("\n", 1)[1])
    ws = _ints(_block(src, "unicode_set_whitespace = {"))
    lower = _ints(_block(src, "unicode_map_lowercase = {").split("\n", 1)[1])
    upper = _ints(_block(src, "unicode_map_uppercase = {").split("\n", 1)[1])
    nfd = _ints(_block(src, "unicode_ranges_nfd = {").split("\n", 1)[1])
    body = [
        '"""Unicode tables ported from llama.cpp src/unicode-data.cpp (generated, do not edit).',
        "",
        "Regenerate with parity_fixtures/tokenizer/gen_unicode_data.py. Each table is a string: base64",
        "of zlib-compressed little-endian uint32 values (emel.tokenizer.unicode.table_values reads it).",
        '"""',
        "",
        "# (start, flags) pairs flattened; a range ends where the next starts; last start is 0x110000",
        _fmt("RANGES_FLAGS", flags),
        "# codepoints with the whitespace flag",
        _fmt("WHITESPACE", ws),
        "# (codepoint, lowercase) pairs flattened, ascending",
        _fmt("MAP_LOWERCASE", lower),
        "# (codepoint, uppercase) pairs flattened, ascending",
        _fmt("MAP_UPPERCASE", upper),
        "# (first, last, nfd) triples flattened, ascending",
        _fmt("RANGES_NFD", nfd),
        "",
    ]
    OUT.write_text("\n".join(body))
    print(f"wrote {OUT}: {len(flags)//2} ranges, {len(ws)} ws, {len(lower)//2} lower, "
          f"{len(upper)//2} upper, {len(nfd)//3} nfd")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
