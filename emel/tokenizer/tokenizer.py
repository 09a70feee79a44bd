"""The tokenizer: text -> token ids and back, for every vocabulary type llama.cpp supports.

Follows llama.cpp src/llama-vocab.cpp `llama_vocab::impl::tokenize`, `token_to_piece` and
`detokenize` (the C API's `llama_tokenize`, `llama_token_to_piece`, `llama_detokenize`).
Where llama.cpp aborts (a byte with no token, a codepoint it cannot re-encode, a token id out of
range) emel raises `TokenizerError`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TokenizerError, UnsupportedError
from . import special, strtab
from .unicode import CPT_TO_BYTE, to_bytes
from .vocab import TOKEN_NULL, TokenAttr, Vocab, VocabType

_ESCAPED_SPACE = "\u2581".encode()


class Tokenizer:
    """llama.cpp's tokenizer for one vocabulary."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self._impl = None
        self._pieces: dict[int, bytes] = {}

    @classmethod
    def from_metadata(cls, metadata: dict) -> "Tokenizer":
        return cls(Vocab.from_metadata(metadata))

    @classmethod
    def from_gguf(cls, path: str | Path) -> "Tokenizer":
        return cls.from_metadata(read_metadata(path))

    # -- properties the generator uses -------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return self.vocab.n_tokens

    def is_eog(self, token: int) -> bool:
        return self.vocab.is_eog(token)

    @property
    def eog_ids(self) -> frozenset:
        return self.vocab.eog_ids

    @property
    def bos(self) -> int:
        return self.vocab.bos

    @property
    def eos(self) -> int:
        return self.vocab.eos

    @property
    def eot(self) -> int:
        return self.vocab.eot

    @property
    def nl(self) -> int:
        """The newline token (llama_vocab_nl), found as impl::load finds it."""
        v = self.vocab
        # load() looks for it before reading special ids, so a fallback is the default pad id
        default_pad = {VocabType.WPM: 0, VocabType.UGM: 0, VocabType.PLAMO2: 3}.get(v.type, TOKEN_NULL)
        if v.type == VocabType.SPM:
            try:
                return v.byte_to_token(10)
            except TokenizerError:
                return default_pad
        if v.type == VocabType.WPM:
            return default_pad
        if v.type == VocabType.TEST:
            return 10 % v.n_tokens
        ids: list[int] = []
        self._tokenizer().tokenize(b"\n", ids)
        if not ids and v.type == VocabType.RWKV:
            raise TokenizerError("model vocab missing newline token")
        return ids[0] if ids else default_pad

    # -- tokenize ----------------------------------------------------------------------------
    def tokenize(self, text: str | bytes, add_special: bool = True,
                 parse_special: bool = False) -> list[int]:
        """llama_tokenize(text, add_special, parse_special)."""
        v = self.vocab
        raw = to_bytes(text)
        frags = special.partition(v, v.special_tokens, raw, parse_special)
        impl = self._tokenizer() if v.type != VocabType.TEST else None
        out: list[int] = []
        vt = v.type
        if vt == VocabType.SPM:
            if add_special and v.add_bos:
                out.append(self._need(v.bos, "bos"))
            is_prev_special = True
            for tid, off, ln in frags:
                if tid >= 0:
                    out.append(tid)
                    is_prev_special = True
                    continue
                piece = raw[off:off + ln]
                if v.add_space_prefix and is_prev_special:
                    piece = b" " + piece
                impl.tokenize(piece.replace(b" ", _ESCAPED_SPACE), out)
                is_prev_special = False
            if add_special and v.add_eos:
                out.append(self._need(v.eos, "eos"))
        elif vt == VocabType.BPE:
            if add_special and v.add_bos:
                out.append(self._need(v.bos, "bos"))
            for tid, off, ln in frags:
                if tid >= 0:
                    out.append(tid)
                    continue
                piece = raw[off:off + ln]
                if v.escape_whitespaces:
                    piece = piece.replace(b" ", _ESCAPED_SPACE)
                impl.tokenize(piece, out)
            if add_special and v.add_eos:
                out.append(self._need(v.eos, "eos"))
        elif vt == VocabType.WPM:
            if add_special:
                out.append(self._need(v.bos, "bos"))
            self._fragments(frags, raw, impl, out)
            if add_special:
                out.append(self._need(v.sep, "sep"))
        elif vt == VocabType.UGM:
            if add_special and v.add_bos:
                out.append(self._need(v.bos, "bos"))
            self._fragments(frags, raw, impl, out)
            if add_special and v.add_eos:
                out.append(self._need(v.eos, "eos"))
        elif vt == VocabType.TEST:
            for tid, off, ln in frags:
                if tid >= 0:
                    out.append(tid)
                    continue
                for pos in range(off, off + ln, 5):
                    h = 0
                    for b in raw[pos:min(pos + 5, off + ln)]:
                        h = (h * 31 + b) & 0xFFFFFFFFFFFFFFFF
                    out.append(h % v.n_tokens)
        else:
            self._fragments(frags, raw, impl, out)
        return out

    @staticmethod
    def _fragments(frags, raw, impl, out) -> None:
        for tid, off, ln in frags:
            if tid >= 0:
                out.append(tid)
            else:
                impl.tokenize(raw[off:off + ln], out)

    @staticmethod
    def _need(token: int, name: str) -> int:
        if token == TOKEN_NULL:
            raise TokenizerError(f"the vocabulary asks for a {name} token but has none")
        return token

    def _tokenizer(self):
        if self._impl is None:
            v = self.vocab
            if v.type == VocabType.SPM:
                from .spm import SpmTokenizer
                self._impl = SpmTokenizer(v, _token_table(v))
            elif v.type == VocabType.BPE:
                from .bpe import BpeTokenizer
                self._impl = BpeTokenizer(v)
            elif v.type == VocabType.WPM:
                from .wpm import WpmTokenizer
                self._impl = WpmTokenizer(v)
            elif v.type == VocabType.UGM:
                from .ugm import UgmTokenizer
                self._impl = UgmTokenizer(v)
            elif v.type == VocabType.RWKV:
                from .rwkv import RwkvTokenizer
                self._impl = RwkvTokenizer(v)
            elif v.type == VocabType.PLAMO2:
                from .plamo2 import Plamo2Tokenizer
                self._impl = Plamo2Tokenizer(v)
            else:
                raise UnsupportedError(f"vocabulary type {v.type.name} cannot tokenize")
        return self._impl

    # -- detokenize --------------------------------------------------------------------------
    def token_to_piece(self, token: int, special: bool = False, lstrip: int = 0) -> bytes:
        """llama_token_to_piece(token, lstrip, special)."""
        v = self.vocab
        if not 0 <= token < v.n_tokens:
            raise TokenizerError(f"token {token} out of range [0, {v.n_tokens})")
        attr = int(v.attrs[token])
        if not special and attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL):
            return b""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._piece(token, attr)
        i = 0
        while i < lstrip and piece[i:i + 1] == b" ":
            i += 1
        return piece[i:] if i else piece

    def _piece(self, token: int, attr: int) -> bytes:
        """token_to_piece with special=true (the cache llama.cpp builds at load)."""
        v = self.vocab
        text = v.tokens[token]
        vt = v.type
        special_attr = TokenAttr.UNKNOWN | TokenAttr.CONTROL
        if vt in (VocabType.WPM, VocabType.SPM, VocabType.UGM, VocabType.BPE):
            if attr & (special_attr | TokenAttr.USER_DEFINED):
                return text
            if attr & TokenAttr.NORMAL:
                if vt != VocabType.BPE or v.escape_whitespaces:
                    return text.replace(_ESCAPED_SPACE, b" ")
                return _decode_gpt2(text)
            if attr & TokenAttr.BYTE:
                return bytes([int(text[3:5], 16) if len(text) >= 5 else 0])
            return b""
        if vt == VocabType.RWKV:
            from .rwkv import unescape_rwkv_token
            return unescape_rwkv_token(text)
        if vt == VocabType.TEST:
            return b"%x" % token
        if vt == VocabType.PLAMO2:
            if (attr & TokenAttr.BYTE and len(text) == 6 and text.startswith(b"<0x")
                    and text.endswith(b">")):
                try:
                    return bytes([int(text[3:5], 16)])
                except ValueError:
                    pass
            return text
        raise UnsupportedError(f"vocabulary type {vt.name} has no pieces")

    def detokenize_bytes(self, tokens, remove_special: bool = False,
                         unparse_special: bool = False) -> bytes:
        """llama_detokenize as bytes (pieces may split UTF-8 sequences)."""
        v = self.vocab
        try:
            toks = [int(t) for t in tokens]
        except (TypeError, ValueError) as e:
            raise TokenizerError(f"tokens must be integers: {e}") from None
        remove_space = v.add_space_prefix
        if remove_special and v.add_bos and toks and toks[0] == v.bos:
            remove_space = False
            toks = toks[1:]
        if remove_special and v.add_eos and toks and toks[-1] == v.eos:
            toks = toks[:-1]
        parts = []
        for t in toks:
            parts.append(self.token_to_piece(t, unparse_special, 1 if remove_space else 0))
            remove_space = False
        text = b"".join(parts)
        if v.clean_spaces and text:
            text = _clean_spaces(text)
        return text

    def detokenize(self, tokens, remove_special: bool = False, unparse_special: bool = False) -> str:
        """llama_detokenize; invalid UTF-8 in the bytes becomes U+FFFD."""
        return self.detokenize_bytes(tokens, remove_special, unparse_special).decode(
            "utf-8", errors="replace")


def _decode_gpt2(text: bytes) -> bytes:
    """llama_decode_text: GPT-2 byte-level codepoints back to bytes."""
    out = bytearray()
    for ch in text.decode("utf-8", "surrogateescape"):
        b = CPT_TO_BYTE.get(ord(ch))
        if b is not None:
            out.append(b)
        else:
            utf8 = ch.encode("utf-8", "surrogateescape")
            out += b"[UNK_BYTE_0x" + utf8.hex().encode() + text + b"]"
    return bytes(out)


def _clean_spaces(text: bytes) -> bytes:
    """The three clean-up passes of impl::detokenize (clean_up_tokenization_spaces)."""
    t = bytearray(text)
    # pass 1: " ?", " !", " .", " ,"
    total1 = len(t)
    total = 1
    for i in range(1, total1):
        x = t[i]
        if t[i - 1] == 0x20 and x in b"?!.,":
            total -= 1
        t[total] = x
        total += 1
    # pass 2: strip a single apostrophe between spaces
    total2 = total
    total = 1
    i = 1
    while i < total2:
        x = t[i]
        if x == 0x27 and i + 1 < total2 and t[i - 1] == 0x20 and t[i + 1] == 0x20:
            total -= 1
            i += 1
            t[i] = 0
        t[total] = x
        total += 1
        i += 1
    # pass 3: " 's", " 'm", " 're", " 've"
    total3 = total
    total = 1
    for i in range(1, total3):
        x = t[i]
        if t[i - 1] == 0x20 and x == 0x27 and i + 1 < total3:
            x1 = t[i + 1]
            if x1 in b"td":
                pass
            elif x1 in b"sm":
                total -= 1
            elif i + 2 < total3:
                x2 = t[i + 2]
                if (x1 == 0x72 and x2 == 0x65) or (x1 == 0x76 and x2 == 0x65):
                    total -= 1
        t[total] = x
        total += 1
    return bytes(t[:total])


def read_metadata(path: str | Path) -> dict:
    """The GGUF metadata of a model file (through emel.gguf)."""
    from ..gguf import read

    return read(path).metadata


def _token_table(v) -> strtab.StrTab:
    """The vocabulary's own text -> id table when its keys are the token texts."""
    if v.lookup_tokens is None and isinstance(v.token_to_id, strtab.Index):
        return v.token_to_id.table
    return strtab.build(v.tokens)
