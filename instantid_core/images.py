"""Conversions between ComfyUI's IMAGE batches (B, H, W, C float 0..1) and uint8 RGB pictures."""

from __future__ import annotations

import numpy as np
import torch


def to_uint8_rgb(images: torch.Tensor) -> list[np.ndarray]:
    """Every picture of an IMAGE batch as an HxWx3 uint8 RGB array (grey is repeated, alpha dropped)."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an IMAGE batch (B, H, W, 1|3|4), got shape {tuple(images.shape)}")
    rgb = images[..., :3] if images.shape[-1] != 1 else images.expand(*images.shape[:-1], 3)
    as_bytes = (rgb.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return list(as_bytes)


def to_image_batch(pictures: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 RGB arrays of one size as an IMAGE batch (B, H, W, 3) float32."""
    return torch.from_numpy(np.stack(pictures)).float() / 255.0
