"""Conversions between ComfyUI's IMAGE batches (B, H, W, C float 0..1) and uint8 RGB pictures."""

from __future__ import annotations

import numpy as np
import torch


def _rgb(images: torch.Tensor) -> torch.Tensor:
    """An IMAGE batch as (B, H, W, 3) float, 0..1: grey is repeated, alpha dropped."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an IMAGE batch (B, H, W, 1|3|4), got shape {tuple(images.shape)}")
    rgb = images[..., :3] if images.shape[-1] != 1 else images.expand(*images.shape[:-1], 3)
    return rgb.detach().float().clamp(0, 1)


def to_uint8_rgb(images: torch.Tensor) -> list[np.ndarray]:
    """Every picture of an IMAGE batch as an HxWx3 uint8 RGB array (grey is repeated, alpha dropped)."""
    return list((_rgb(images) * 255).round().to(torch.uint8).cpu().numpy())


def to_float_rgb(images: torch.Tensor) -> list[np.ndarray]:
    """Every picture of an IMAGE batch as an HxWx3 float32 RGB array in 0..1 (grey is repeated, alpha dropped)."""
    return list(_rgb(images).cpu().numpy())


def from_float_rgb(pictures: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 float arrays (0..1) of one size as an IMAGE batch (B, H, W, 3) float32."""
    return torch.from_numpy(np.stack(pictures).astype(np.float32))


def to_image_batch(pictures: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 RGB arrays of one size as an IMAGE batch (B, H, W, 3) float32."""
    return torch.from_numpy(np.stack(pictures)).float() / 255.0
