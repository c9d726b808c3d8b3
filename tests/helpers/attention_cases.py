"""Small identity-attention cases shared by the core's unit tests and the attn2 protocol's host tests: a plain softmax
attention written independently of the pack, two layers' K/V, and the identity term they must give."""

import math

import torch

HEADS, WIDTH = 2, 8  # 2 heads of 4
H, W = 4, 4  # the layer's resolution: 16 query tokens
ROWS = 2  # images per cond/uncond half
KEY, OTHER_KEY = ("output", 1, 3), ("input", 4, 0)
INDEX, OTHER_INDEX = 57, 1
SCALE, OTHER_SCALE = 0.7, 0.3


def softmax_attention(q, k, v, heads):
    """Plain multi-head softmax attention over [B, tokens, heads*dim]."""
    b, tq, width = q.shape
    d = width // heads

    def split(t):
        return t.reshape(b, t.shape[1], heads, d).transpose(1, 2)

    weights = torch.softmax(split(q) @ split(k).transpose(-2, -1) / math.sqrt(d), dim=-1)
    return (weights @ split(v)).transpose(1, 2).reshape(b, tq, width)


def by_head_attention(q, k, v):
    """Plain softmax attention over [B, heads, tokens, dim] (the identity term's kernel contract)."""
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


def by_head(t, heads=HEADS):
    """[B, tokens, heads*dim] as [B, heads, tokens, dim]."""
    return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


def randn(*shape, seed):
    """Seeded normal noise."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


IDENTITY_KV = {
    INDEX: (randn(2, 3, WIDTH, seed=1), randn(2, 3, WIDTH, seed=2)),  # row 0 cond, row 1 uncond
    OTHER_INDEX: (randn(2, 3, WIDTH, seed=3), randn(2, 3, WIDTH, seed=4)),
}
SCALES = {INDEX: SCALE, OTHER_INDEX: OTHER_SCALE}
HEADS_OF = {INDEX: HEADS, OTHER_INDEX: HEADS}


def scaled_kv(kv=IDENTITY_KV) -> dict:
    """The K/V as an apply makes them: each V multiplied by its layer's scale."""
    return {i: (k, v * SCALES[i]) for i, (k, v) in kv.items()}


def inputs(halves: int = 2, dtype=torch.float32, device="cpu"):
    """q, text k, text v for `halves` × ROWS images."""
    b = halves * ROWS
    return tuple(randn(b, n, WIDTH, seed=10 + i).to(device=device, dtype=dtype) for i, n in enumerate((H * W, 5, 5)))


def expected_identity(q, cond_or_uncond, index=INDEX):
    """scale · attn(q, K_id, V_id) image by image: image r of half h uses K/V row cond_or_uncond[h]."""
    k_all, v_all = IDENTITY_KV[index]
    out = []
    for r in range(q.shape[0]):
        row = cond_or_uncond[r // ROWS]
        out.append(softmax_attention(q[r : r + 1].float(), k_all[row : row + 1], v_all[row : row + 1], HEADS))
    return torch.cat(out) * SCALES[index]


def half_mask(height: int, width: int, batch: int = 1) -> torch.Tensor:
    """[batch, height, width]: 0 on the left half, 1 on the right half."""
    mask = torch.zeros(batch, height, width)
    mask[..., width // 2 :] = 1.0
    return mask


def left_tokens() -> torch.Tensor:
    """Which of the layer's H×W tokens (row by row) lie in the left half."""
    return torch.arange(H * W) % W < W // 2
