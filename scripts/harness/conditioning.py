"""Conditioning as SDXL's text encoders give it, without running them (host tests and benchmarks)."""

import torch

TEXT_TOKENS, TOKEN_DIM, POOLED_DIM = 77, 2048, 1280


def sdxl_conditioning(seed: int) -> list:
    """A CONDITIONING list as CLIPTextEncode would give for SDXL (77 tokens of 2048, pooled 1280, size ids)."""
    gen = torch.Generator().manual_seed(seed)
    return [
        [
            torch.randn(1, TEXT_TOKENS, TOKEN_DIM, generator=gen),
            {
                "pooled_output": torch.randn(1, POOLED_DIM, generator=gen),
                "width": 1024,
                "height": 1024,
                "target_width": 1024,
                "target_height": 1024,
                "crop_w": 0,
                "crop_h": 0,
            },
        ]
    ]
