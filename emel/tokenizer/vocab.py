"""The vocabulary: tokens, scores, attributes, merges and special ids from GGUF metadata.

Follows llama.cpp src/llama-vocab.cpp `llama_vocab::impl::load`. Where llama.cpp keeps the first
match while iterating its `std::unordered_map` (auto-detected EOT and FIM ids), emel replays
libstdc++'s iteration order, and it orders the special-token cache with a replay of libstdc++'s
(unstable) `std::sort`, so overlapping special tokens of equal length split text as there.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import TokenizerError, UnsupportedError
from ..gguf.strings import PackedBytes, StringArray
from . import strtab

TOKEN_NULL = -1
DNA_KMER_MARKER = "\ue000".encode()  # reserved suffix of hybriddna k-mer tokens


class VocabType(enum.IntEnum):
    """llama_vocab_type."""
    NONE = 0
    SPM = 1
    BPE = 2
    WPM = 3
    UGM = 4
    RWKV = 5
    PLAMO2 = 6
    TEST = 7


class TokenAttr(enum.IntFlag):
    """llama_token_attr."""
    UNDEFINED = 0
    UNKNOWN = 1 << 0
    UNUSED = 1 << 1
    NORMAL = 1 << 2
    CONTROL = 1 << 3
    USER_DEFINED = 1 << 4
    BYTE = 1 << 5
    NORMALIZED = 1 << 6
    LSTRIP = 1 << 7
    RSTRIP = 1 << 8
    SINGLE_WORD = 1 << 9


# llama_token_type (GGUF tokenizer.ggml.token_type) -> llama_token_attr
_TYPE_TO_ATTR = np.array([0, TokenAttr.NORMAL, TokenAttr.UNKNOWN, TokenAttr.CONTROL,
                          TokenAttr.USER_DEFINED, TokenAttr.UNUSED, TokenAttr.BYTE], dtype=np.int32)

# tokenizer.ggml.pre -> (pre-tokenizer, overrides) as in impl::load
_PRE = {}


def _pre(names, pre, **overrides):
    for name in names:
        _PRE[name] = (pre, overrides)


_pre(["default"], "default")
_pre(["minicpm5"], "minicpm5", ignore_merges=True)
_pre(["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
      "jina-v5-nano"], "llama3", ignore_merges=True, add_bos=True)
_pre(["deepseek-llm"], "deepseek_llm", clean_spaces=False)
_pre(["deepseek-coder"], "deepseek_coder", clean_spaces=False)
_pre(["deepseek-v3"], "deepseek3_llm", clean_spaces=False)
_pre(["spark2_5"], "spark2_5", clean_spaces=False)
_pre(["youtu"], "youtu", clean_spaces=False, ignore_merges=True)
_pre(["falcon"], "falcon")
_pre(["mpt"], "mpt")
_pre(["starcoder"], "starcoder")
_pre(["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
      "mellum", "modern-bert"], "gpt2")
_pre(["jais-2"], "jais2")
_pre(["gemma4", "granite-embed-multi-311m"], "gemma4", escape_whitespaces=True)
_pre(["sarvam-moe"], "sarvam_moe", escape_whitespaces=True, clean_spaces=False)
_pre(["jina-v1-en", "jina-v2-code", "roberta-bpe"], "gpt2", add_sep=True)
_pre(["whitespace"], "whitespace", lowercase=False)
_pre(["refact"], "refact")
_pre(["command-r"], "command_r", clean_spaces=False)
_pre(["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2"], "qwen2", clean_spaces=False)
_pre(["qwen35"], "qwen35", clean_spaces=False)
_pre(["stablelm2"], "stablelm2")
_pre(["olmo"], "olmo")
_pre(["dbrx"], "dbrx")
_pre(["smaug-bpe"], "smaug")
_pre(["poro-chat"], "poro", clean_spaces=False)
_pre(["chatglm-bpe"], "chatglm4", bos=TOKEN_NULL)
_pre(["glm4", "glm5"], "chatglm4", bos=TOKEN_NULL, ignore_merges=True)
_pre(["viking"], "viking", clean_spaces=False)
_pre(["jais"], "jais")
_pre(["tekken"], "tekken", clean_spaces=False, ignore_merges=True, add_bos=True)
_pre(["smollm"], "smollm", clean_spaces=False)
_pre(["codeshell"], "codeshell")
_pre(["bloom"], "bloom")
_pre(["gpt3-finnish"], "gpt3_finnish")
_pre(["exaone"], "exaone")
_pre(["exaone4"], "gpt2")
_pre(["exaone-moe"], "exaone_moe")
_pre(["chameleon"], "chameleon", add_bos=True, clean_spaces=False)
_pre(["minerva-7b"], "minerva")
_pre(["megrez"], "qwen2")
_pre(["gpt-4o", "llama4", "kanana2", "talkie"], "gpt4o", clean_spaces=False)
_pre(["granite-embed-multi-97m"], "granite_emb_multi", clean_spaces=False, ignore_merges=True)
_pre(["tiny_aya", "cohere2moe"], "tiny_aya", clean_spaces=False)
_pre(["superbpe"], "superbpe", clean_spaces=False)
_pre(["trillion"], "trillion", clean_spaces=False)
_pre(["granite-docling"], "granite_docling", clean_spaces=False)
_pre(["bailingmoe", "bailingmoe2", "llada-moe"], "bailingmoe", clean_spaces=False)
_pre(["seed-coder"], "seed_coder", clean_spaces=False)
_pre(["hunyuan"], "hunyuan", clean_spaces=False)
_pre(["hunyuan-dense"], "hunyuan_dense", clean_spaces=False)
_pre(["hy_v4"], "hy_v4", clean_spaces=False)
_pre(["joyai-llm"], "joyai_llm", clean_spaces=False)
_pre(["kimi-k2"], "kimi_k2", clean_spaces=False)
_pre(["ufakzeka"], "ufakzeka", clean_spaces=False)
_pre(["grok-2"], "grok_2", clean_spaces=False)
_pre(["afmoe"], "afmoe", clean_spaces=False)
_pre(["laguna"], "laguna", clean_spaces=False)
_pre(["minimax-m2"], "minimax_m2", clean_spaces=False)
_pre(["solar-open"], "solar_open", clean_spaces=False)
_pre(["mellum2"], "mellum2")

_SPECIAL_KEYS = [
    ("bos", "bos_token_id"), ("eos", "eos_token_id"), ("eot", "eot_token_id"),
    ("eom", "eom_token_id"), ("unk", "unknown_token_id"), ("sep", "seperator_token_id"),
    ("pad", "padding_token_id"), ("mask", "mask_token_id"), ("fim_pre", "fim_pre_token_id"),
    ("fim_suf", "fim_suf_token_id"), ("fim_mid", "fim_mid_token_id"),
    ("fim_pad", "fim_pad_token_id"), ("fim_rep", "fim_rep_token_id"),
    ("fim_sep", "fim_sep_token_id"), ("fim_pre", "prefix_token_id"),
    ("fim_suf", "suffix_token_id"), ("fim_mid", "middle_token_id"),
]

_EOT_NAMES = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
              "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
              "<end_of_utterance>"]
_EOM_NAMES = ["<|eom_id|>"]
_FIM_PRE_NAMES = ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>",
                  "▁<PRE>", "<|code_prefix|>", "<|prefix|>"]
_FIM_SUF_NAMES = ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>",
                  "▁<SUF>", "<|code_suffix|>", "<|suffix|>"]
_FIM_MID_NAMES = ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>",
                  "▁<MID>", "<|code_middle|>", "<|middle|>"]
_FIM_PAD_NAMES = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
_FIM_REP_NAMES = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
_FIM_SEP_NAMES = ["<|file_sep|>"]
_EOG_NAMES = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
              "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
              "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
              "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["]
_ALWAYS_RENDER = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]


@dataclass
class Vocab:
    """A loaded vocabulary (llama_vocab). Token texts are bytes, as in llama.cpp."""
    tokenizer_model: str
    tokenizer_pre: str
    type: VocabType
    pre_type: str
    tokens: Sequence[bytes]                   # n_tokens: token text (strtab.Texts, or a list)
    scores: np.ndarray                        # float32[n_tokens]
    attrs: np.ndarray                         # int32[n_tokens]: TokenAttr bits
    token_to_id: Mapping[bytes, int]          # strtab.Index over the token texts
    merges: Sequence[bytes] = field(default_factory=list)  # "first second" merge rules in rank order
    n_token_types: int = 0
    bos: int = TOKEN_NULL
    eos: int = TOKEN_NULL
    eot: int = TOKEN_NULL
    eom: int = TOKEN_NULL
    unk: int = TOKEN_NULL
    sep: int = TOKEN_NULL
    pad: int = TOKEN_NULL
    mask: int = TOKEN_NULL
    fim_pre: int = TOKEN_NULL
    fim_suf: int = TOKEN_NULL
    fim_mid: int = TOKEN_NULL
    fim_pad: int = TOKEN_NULL
    fim_rep: int = TOKEN_NULL
    fim_sep: int = TOKEN_NULL
    add_space_prefix: bool = False
    add_bos: bool = False
    add_eos: bool = False
    add_sep: bool = False
    ignore_merges: bool = False
    clean_spaces: bool = False
    remove_extra_whitespaces: bool = False
    escape_whitespaces: bool = True
    treat_whitespace_as_suffix: bool = False
    lowercase: bool = False                   # BertNormalizer lowercase
    strip_accents: bool = False               # BertNormalizer strip_accents
    precompiled_charsmap: bytes = b""         # UGM normaliser blob
    max_token_len: int = 0                    # longest token text in bytes
    eog_ids: frozenset = frozenset()          # tokens that end generation
    special_tokens: list[int] = field(default_factory=list)  # cache_special_tokens order
    suppress_tokens: list[int] = field(default_factory=list)
    lookup_tokens: list[bytes] | None = None  # token_to_id's texts where they differ (hybriddna)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_metadata(cls, metadata: dict) -> "Vocab":
        """Build the vocabulary from GGUF metadata as llama.cpp's impl::load does."""
        return _load(metadata)

    def is_eog(self, token: int) -> bool:
        return token != TOKEN_NULL and token in self.eog_ids

    def text_to_token(self, text: bytes) -> int:
        return self.token_to_id.get(text, TOKEN_NULL)

    def token_attr(self, token: int) -> int:
        return int(self.attrs[token])

    def byte_to_token(self, ch: int) -> int:
        """llama_vocab::byte_to_token; raises TokenizerError where llama.cpp's .at() throws."""
        if self.type in (VocabType.SPM, VocabType.UGM):
            tok = self.token_to_id.get(b"<0x%02X>" % ch)
            if tok is None:
                tok = self.token_to_id.get(bytes([ch]))
        elif self.type in (VocabType.WPM, VocabType.BPE):
            from .unicode import BYTE_TO_CPT
            tok = self.token_to_id.get(chr(BYTE_TO_CPT[ch]).encode("utf-8"))
        elif self.type == VocabType.PLAMO2:
            tok = self.token_to_id.get(b"<0x%02X>" % ch)
        else:
            return TOKEN_NULL
        if tok is None:
            raise TokenizerError(f"vocabulary has no token for byte 0x{ch:02X}")
        return tok


def _text(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


def _token_table(raw) -> strtab.StrTab:
    """The token texts as a lookup table; an empty text becomes "[EMPTY_i]" as in llama.cpp.
    The loader's lazy metadata is indexed in place: no bytes object per token is made."""
    if isinstance(raw, StringArray) and (len(raw) == 0 or np.diff(raw.offsets).min() > 0):
        return strtab.build_packed(raw.data, raw.offsets)
    tokens = _texts(raw)
    for i, t in enumerate(tokens):
        if not t:
            tokens[i] = b"[EMPTY_%d]" % i
    return strtab.build(tokens)


def _texts(values) -> list[bytes]:
    if isinstance(values, StringArray):  # the loader's metadata: the file's bytes, no str made
        return values.to_bytes()
    enc = str.encode
    try:
        return [enc(v, "utf-8", "surrogateescape") for v in values]
    except TypeError:  # bytes (or other) values
        return [_text(v) for v in values]


def _get(meta: dict, key: str, default=None):
    return meta.get("tokenizer.ggml." + key, default)


def _load(meta: dict) -> Vocab:
    model = _get(meta, "model")
    if model is None:
        raise TokenizerError("metadata has no tokenizer.ggml.model")
    model = str(model)
    pre = str(_get(meta, "pre", "") or "")
    o: dict = dict(add_space_prefix=False, add_bos=False, add_eos=False, add_sep=False,
                   ignore_merges=False, clean_spaces=False, escape_whitespaces=True, lowercase=True)
    ids = dict(bos=1, eos=2, eot=TOKEN_NULL, eom=TOKEN_NULL, unk=0, sep=TOKEN_NULL, pad=TOKEN_NULL,
               mask=TOKEN_NULL, fim_pre=TOKEN_NULL, fim_suf=TOKEN_NULL, fim_mid=TOKEN_NULL,
               fim_pad=TOKEN_NULL, fim_rep=TOKEN_NULL, fim_sep=TOKEN_NULL)
    merges: list[bytes] = []
    charsmap = b""
    pre_type = "default"
    if model in ("no_vocab", "none"):
        raise UnsupportedError(f"tokenizer model {model!r} has no vocabulary to tokenize with")
    if model == "llama":
        vtype = VocabType.SPM
    elif model == "bert":
        vtype = VocabType.WPM
        ids.update(bos=101, eos=TOKEN_NULL, unk=100, sep=102, pad=0, mask=103)
        o["add_sep"] = True
    elif model in ("gpt2", "hybriddna", "whitespace", "gemma4"):
        vtype = VocabType.BPE
        raw = _get(meta, "merges")
        if raw is None and not (model != "gemma4" and pre == "kimi-k2"):
            raise TokenizerError("cannot find tokenizer merges in model file")
        if isinstance(raw, StringArray):  # packed, as the BPE merge tables read them
            merges = strtab.Texts(raw.data, raw.offsets)
        else:
            merges = _texts(raw or [])
        if model == "gemma4":
            ids.update(bos=TOKEN_NULL, eos=TOKEN_NULL, unk=TOKEN_NULL)
            pre = "gemma4"
        else:
            ids.update(bos=11, eos=11, unk=TOKEN_NULL)
    elif model == "t5":
        vtype = VocabType.UGM
        ids.update(bos=TOKEN_NULL, eos=1, unk=2, pad=0)
        pcm = _get(meta, "precompiled_charsmap")
        if pcm is not None:
            charsmap = np.asarray(pcm).astype(np.uint8).tobytes()
            if len(charsmap) < 4:
                raise TokenizerError("precompiled_charsmap too small for xcda_blob_size header")
            blob = int.from_bytes(charsmap[:4], "little")
            if blob + 4 >= len(charsmap):
                raise TokenizerError("index out of array bounds in precompiled charsmap")
    elif model == "rwkv":
        vtype = VocabType.RWKV
        ids.update(bos=TOKEN_NULL, eos=TOKEN_NULL, unk=TOKEN_NULL)
    elif model == "plamo2":
        vtype = VocabType.PLAMO2
        ids.update(bos=1, eos=2, unk=0, pad=3)
    elif model == "test":
        vtype = VocabType.TEST
        ids.update(bos=TOKEN_NULL, eos=TOKEN_NULL, unk=TOKEN_NULL)
    else:
        raise UnsupportedError(f"unknown tokenizer: {model!r}")

    if vtype == VocabType.BPE:
        o.update(add_space_prefix=False, escape_whitespaces=False, clean_spaces=True)
        if pre == "":
            pre_type = "default"
        elif pre in _PRE:
            pre_type, overrides = _PRE[pre]
            for k, v in overrides.items():
                if k == "bos":
                    ids["bos"] = v
                else:
                    o[k] = v
        else:
            raise UnsupportedError(f"unknown pre-tokenizer type: {pre!r}")
    elif vtype == VocabType.SPM:
        o.update(add_space_prefix=True, clean_spaces=False, add_bos=True, add_eos=False)
    elif vtype == VocabType.WPM:
        o.update(add_space_prefix=False, clean_spaces=True, add_bos=True, add_eos=False, add_sep=True)
    elif vtype == VocabType.UGM:
        o.update(add_bos=False, add_eos=True)
    elif vtype == VocabType.RWKV:
        o.update(add_space_prefix=False, clean_spaces=False, add_bos=False, add_eos=False)

    if _get(meta, "add_space_prefix") is not None:
        o["add_space_prefix"] = bool(_get(meta, "add_space_prefix"))
    remove_extra_ws = bool(_get(meta, "remove_extra_whitespaces", False))

    raw_tokens = _get(meta, "tokens")
    if raw_tokens is None:
        raise TokenizerError("cannot find tokenizer vocab in model file")
    table = _token_table(raw_tokens)
    tokens = strtab.Texts(table.data, table.offsets)
    n = len(tokens)
    scores_raw = _get(meta, "scores")
    if scores_raw is not None:
        scores = np.asarray(scores_raw).astype(np.float32, copy=False)  # shares a float32 metadata array
        if scores.size < n:
            raise TokenizerError(f"index out of array bounds for scores ({scores.size} < {n})")
        scores = scores[:n]
    else:
        scores = np.zeros(n, dtype=np.float32)
    types_raw = _get(meta, "token_type")
    if types_raw is not None:
        types = np.asarray(types_raw).astype(np.int64)
        if types.size < n:
            raise TokenizerError(f"index out of array bounds for toktypes ({types.size} < {n})")
        types = types[:n]
        attrs = np.where((types >= 0) & (types < 7), _TYPE_TO_ATTR[np.clip(types, 0, 6)], 0)
        attrs = attrs.astype(np.int32)
    else:
        attrs = np.full(n, int(TokenAttr.NORMAL), dtype=np.int32)
    token_to_id = strtab.Index(table)
    if len(token_to_id) != n:
        raise TokenizerError(f"vocabulary has duplicate tokens ({n - len(token_to_id)} repeated)")
    max_token_len = int(np.diff(table.offsets).max()) if n else 0
    lookup_tokens = None
    if model == "hybriddna" and b"<oov>" in token_to_id:
        # k-mer texts carry a marker that keeps them apart in token_to_id; pieces drop it
        lookup_tokens = list(tokens)
        tokens = list(tokens)
        for i in range(token_to_id[b"<oov>"] + 1, n):
            t = tokens[i]
            if len(t) > len(DNA_KMER_MARKER) and t.endswith(DNA_KMER_MARKER):
                tokens[i] = t[:-len(DNA_KMER_MARKER)]

    # special ids: defaults out of range are disabled; GGUF values override when in range
    for name, key in _SPECIAL_KEYS:
        if ids[name] >= 0 and ids[name] >= n:
            ids[name] = TOKEN_NULL
        v = _get(meta, key)
        if v is None:
            continue
        v = int(v)
        if 0 <= v < n:
            ids[name] = v

    for flag in ("add_bos", "add_eos", "add_sep"):
        v = _get(meta, flag + "_token")
        if v is not None:
            o[flag] = bool(v)
    if pre_type == "gemma4" and not o["add_bos"]:
        o["add_bos"] = True

    lowercase = o["lowercase"]
    v = _get(meta, "normalizer.lowercase")
    if v is not None:
        lowercase = bool(v)
    strip_accents = lowercase
    v = _get(meta, "normalizer.strip_accents")
    if v is not None:
        strip_accents = bool(v)

    suppress = []
    v = _get(meta, "suppress_tokens")
    if v is not None:
        suppress = [int(t) for t in np.asarray(v).tolist() if 0 <= int(t) < n]

    def mark_control(tid: int) -> None:
        if not attrs[tid] & TokenAttr.CONTROL:
            attrs[tid] |= TokenAttr.CONTROL

    rank = None

    def first_of(names: list[str]) -> int:
        nonlocal rank
        found = [token_to_id[b] for b in (s.encode() for s in names) if b in token_to_id]
        if len(found) < 2:
            return found[0] if found else TOKEN_NULL
        if rank is None:
            from .stdmap import iteration_rank
            rank = iteration_rank(lookup_tokens or tokens)
        return min(found, key=lambda t: rank[t])

    for slot, names in (("eot", _EOT_NAMES), ("eom", _EOM_NAMES), ("fim_pre", _FIM_PRE_NAMES),
                        ("fim_suf", _FIM_SUF_NAMES), ("fim_mid", _FIM_MID_NAMES),
                        ("fim_pad", _FIM_PAD_NAMES), ("fim_rep", _FIM_REP_NAMES),
                        ("fim_sep", _FIM_SEP_NAMES)):
        if ids[slot] == TOKEN_NULL:
            tid = first_of(names)
            if tid != TOKEN_NULL:
                ids[slot] = tid
                mark_control(tid)

    # control tokens whose text says "unused" are unused
    control = np.nonzero(attrs & int(TokenAttr.CONTROL))[0]
    unused_flag = int(TokenAttr.UNUSED)
    for tid in control.tolist():
        if b"unused" in tokens[tid]:
            attrs[tid] |= unused_flag

    eog = set()
    for slot in ("fim_pad", "fim_rep", "fim_sep"):
        if ids[slot] != TOKEN_NULL:
            eog.add(ids[slot])
    for name in _EOG_NAMES:
        tid = token_to_id.get(name.encode())
        if tid is not None:
            eog.add(tid)
            mark_control(tid)
    for name in _ALWAYS_RENDER:
        tid = token_to_id.get(name.encode())
        if tid is not None:
            attrs[tid] = TokenAttr.USER_DEFINED
    for slot in ("eos", "eot", "eom"):
        if ids[slot] != TOKEN_NULL:
            eog.add(ids[slot])
    texts = {tokens[t]: t for t in eog if 0 <= t < n}
    has_return = b"<|return|>" in texts
    has_call = b"<|call|>" in texts or b"<|calls|>" in texts
    has_flush = b"<|flush|>" in texts
    if b"<|end|>" in texts and ((has_return and has_call) or (has_call and has_flush)):
        end_id = texts[b"<|end|>"]
        eog.discard(end_id)
        attrs[end_id] = TokenAttr.USER_DEFINED
    if b"</s>" in texts and (b"<|tool_response>" in texts or b"<|plamo:eos|>" in texts):
        s_id = texts[b"</s>"]
        eog.discard(s_id)
        attrs[s_id] = TokenAttr.NORMAL

    special_mask = int(TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)
    special = np.nonzero(attrs & special_mask)[0].tolist()
    if len(special) > 1:
        from .stdmap import sort_by_length_desc
        # lengths from the packed offsets: iterating the texts would make a bytes object per token
        # (25 MB at once for a 262k vocabulary, the load's peak)
        lens = (np.diff(tokens.offsets) if isinstance(tokens, PackedBytes)
                else np.fromiter(map(len, tokens), np.int64, count=n))
        special = sort_by_length_desc(special, lens)

    # per-model token attributes
    model_name = str(meta.get("general.name", "") or "").lower()
    arch = str(meta.get("general.architecture", "") or "")
    if (any(s in pre for s in ("jina-v2-de", "jina-v2-es", "jina-v2-code"))
            or any(s in arch for s in ("nomic-bert-moe", "jina-bert-v3"))):
        if b"<mask>" in token_to_id:
            attrs[token_to_id[b"<mask>"]] |= TokenAttr.LSTRIP
    elif "phi-3" in model_name or "phi3" in model_name:
        for tid in special:
            attrs[tid] |= TokenAttr.RSTRIP
        _set_attr(attrs, token_to_id, b"</s>", TokenAttr.RSTRIP, True)
        for name in (b"<unk>", b"<s>", b"<|endoftext|>"):
            _set_attr(attrs, token_to_id, name, TokenAttr.RSTRIP, False)
    elif "modern-bert" in model_name:
        if b"[MASK]" in token_to_id:
            attrs[token_to_id[b"[MASK]"]] |= TokenAttr.LSTRIP

    return Vocab(
        tokenizer_model=model, tokenizer_pre=pre, type=vtype, pre_type=pre_type, tokens=tokens,
        scores=scores, attrs=attrs, token_to_id=token_to_id, merges=merges,
        n_token_types=int(_get(meta, "token_type_count", 0) or 0),
        add_space_prefix=o["add_space_prefix"], add_bos=o["add_bos"], add_eos=o["add_eos"],
        add_sep=o["add_sep"], ignore_merges=o["ignore_merges"], clean_spaces=o["clean_spaces"],
        remove_extra_whitespaces=remove_extra_ws, escape_whitespaces=o["escape_whitespaces"],
        lowercase=lowercase, strip_accents=strip_accents, precompiled_charsmap=charsmap,
        max_token_len=max_token_len, eog_ids=frozenset(eog), special_tokens=special,
        lookup_tokens=lookup_tokens,
        suppress_tokens=suppress, **ids)


def _set_attr(attrs: np.ndarray, token_to_id: dict, text: bytes, attr: int, value: bool) -> None:
    tid = token_to_id.get(text)
    if tid is None:
        raise TokenizerError(f"token {text!r} missing from the vocabulary")
    if value:
        attrs[tid] |= attr
    else:
        attrs[tid] &= ~attr
