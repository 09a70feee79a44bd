"""Samplers with llama.cpp's behaviour: candidates in, one token out.

`SamplerChain` holds samplers in order (`build_chain(SamplerParams(), n_vocab)` gives llama.cpp's
common default chain); factories named as llama.cpp's `llama_sampler_init_*` build single samplers.
"""

from .chain import DEFAULT_SAMPLERS, SamplerChain, SamplerParams, SamplerType, build_chain
from .mt19937 import LLAMA_DEFAULT_SEED, MT19937
from .penalties import Dry, Penalties, dry, penalties
from .samplers import (
    XTC, Dist, Greedy, LogitBias, MinP, Mirostat, MirostatV2, NoOp, Sampler, Temp, TempExt,
    TopK, TopNSigma, TopP, Typical, dist, greedy, logit_bias, min_p, mirostat, mirostat_v2,
    temp, temp_ext, top_k, top_n_sigma, top_p, typical, xtc,
)
from .token_data import TokenDataArray

__all__ = [
    "DEFAULT_SAMPLERS", "LLAMA_DEFAULT_SEED", "MT19937", "SamplerChain", "SamplerParams",
    "SamplerType", "TokenDataArray", "build_chain", "Sampler", "NoOp", "Greedy", "Dist", "TopK",
    "TopP", "MinP", "Typical", "Temp", "TempExt", "XTC", "TopNSigma", "Mirostat", "MirostatV2",
    "LogitBias", "Penalties", "Dry", "greedy", "dist", "top_k", "top_p", "min_p", "typical",
    "temp", "temp_ext", "xtc", "top_n_sigma", "mirostat", "mirostat_v2", "logit_bias",
    "penalties", "dry",
]
