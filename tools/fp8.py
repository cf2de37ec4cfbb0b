"""Block-scaled FP8 (e4m3) as DeepSeek-V3 and GLM-4.5-FP8 ship it, in numpy: roe's own quantizer for
the fixtures (tools/make_fixtures.py) and the random checkpoints (tools/make_random_checkpoint.py).

Format (transformers' FineGrainedFP8Config, the published DeepSeek-V3 checkpoint): a Linear's
`X.weight` is F8_E4M3 [out, in], `X.weight_scale_inv` F32 [ceil(out/128), ceil(in/128)], and the
weight is e4m3 value x the scale of its 128 x 128 tile. config.json's quantization_config is
QUANT_CONFIG. Quantizing a tile: scale = max|w| / 448 (1 for an all-zero tile), q = w / scale
(fp32) rounded to the nearest e4m3 value, ties to even (what torch's float8_e4m3fn cast does:
`check_against_torch` verifies it).

Which linears: every attention and MLP / expert projection of the decoder layers; the embedding
table, lm_head, norms, the router (mlp.gate) and e_score_correction_bias stay as they were.
"""

import re

import numpy as np

BLOCK = 128
E4M3_MAX = 448.0
QUANT_CONFIG = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [BLOCK, BLOCK]}


def _code_values():
    codes = np.arange(256, dtype=np.uint16)
    s, e, m = codes >> 7, (codes >> 3) & 15, codes & 7
    v = np.where(e == 0, np.ldexp(m / 8.0, -6), np.ldexp(1.0 + m / 8.0, e.astype(np.int64) - 7))
    v = np.where(s == 1, -v, v)
    v[(codes & 0x7F) == 0x7F] = np.nan
    return v


E4M3_VALUES = _code_values()          # float64 value of every byte (NaN for 0x7f, 0xff)
_POS = E4M3_VALUES[:127]             # codes 0..126: 0 .. 448, increasing


def round_e4m3(x):
    """float array (|x| <= 448 after scaling) -> uint8 e4m3 codes, round to nearest, ties to even;
    values beyond 448 saturate to 448 (they do not occur: the scale maps max|w| to 448)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), E4M3_MAX)
    hi = np.clip(np.searchsorted(_POS, a, side="left"), 1, 126)
    lo = hi - 1
    dlo, dhi = a - _POS[lo], _POS[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    code = np.where(a == 0, 0, code).astype(np.uint8)
    return np.where(np.signbit(x), code | 0x80, code).astype(np.uint8)


def quantize(w):
    """w [out, in] (float32) -> (q uint8 [out, in], scale_inv float32 [ceil(out/128), ceil(in/128)])."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    tr, tc = -(-rows // BLOCK), -(-cols // BLOCK)
    pad = np.zeros((tr * BLOCK, tc * BLOCK), np.float32)
    pad[:rows, :cols] = np.abs(w)
    amax = pad.reshape(tr, BLOCK, tc, BLOCK).max(axis=(1, 3))
    scale = np.where(amax > 0, amax / np.float32(E4M3_MAX), np.float32(1.0)).astype(np.float32)
    full = np.repeat(np.repeat(scale, BLOCK, 0), BLOCK, 1)[:rows, :cols]
    q = round_e4m3((w / full).astype(np.float32))
    return q, scale


def dequantize(q, scale):
    """The weights an FP8 matrix stands for, in float32 (e4m3 value x tile scale, one fp32 multiply,
    as transformers' dequantization computes it)."""
    rows, cols = q.shape
    full = np.repeat(np.repeat(scale, BLOCK, 0), BLOCK, 1)[:rows, :cols]
    return E4M3_VALUES[q].astype(np.float32) * full


_NOT_QUANTIZED = re.compile(r"(norm|embed_tokens|lm_head|mlp\.gate\.weight$|e_score_correction_bias)")


def is_quantized_linear(name, ndim):
    """Whether a hub-named checkpoint tensor is one of the FP8 linears."""
    return ndim == 2 and name.startswith("model.layers.") and name.endswith(".weight") and not _NOT_QUANTIZED.search(name)


def check_against_torch(n=200000, seed=0):
    """round_e4m3 agrees with torch's float8_e4m3fn cast on random values, ties and subnormals."""
    import torch
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal(n) * 100, rng.standard_normal(n) * 1e-2, np.ldexp(rng.standard_normal(n), -9),
                        E4M3_VALUES[~np.isnan(E4M3_VALUES)],
                        (_POS[:-1] + _POS[1:]) / 2, -(_POS[:-1] + _POS[1:]) / 2]).astype(np.float32)
    x = np.clip(x, -E4M3_MAX, E4M3_MAX)
    want = torch.from_numpy(x).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    got = round_e4m3(x)
    bad = np.nonzero(got != want)[0]
    if len(bad):
        i = bad[0]
        raise AssertionError(f"e4m3 rounding of {x[i]!r}: 0x{got[i]:02x}, torch 0x{want[i]:02x} ({len(bad)} differ)")
    return len(x)


if __name__ == "__main__":
    print(f"round_e4m3 matches torch.float8_e4m3fn on {check_against_torch()} values")
