"""InstantID's own reference code, as published, for side-by-side comparisons: the keypoint drawing, the photo
resize before face analysis and the face-region mask of its demo; and, written here independently of the pack, where
a photo's keypoints land at a generation size when the photo is resized to it, and the hint InstantID draws there."""

import math

import cv2
import numpy as np
import torch
from PIL import Image


def reference_draw_kps(width: int, height: int, kps: np.ndarray) -> np.ndarray:
    """InstantID's own `draw_kps` (pipeline_stable_diffusion_xl_instantid.py), one face, as published: its arithmetic
    runs in the keypoints' own dtype (float32 from insightface)."""
    kps = np.array(kps)
    color_list = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]
    stickwidth = 4
    limb_seq = np.array([[0, 2], [1, 2], [3, 2], [4, 2]])
    out_img = np.zeros([height, width, 3])
    for index in limb_seq:
        color = color_list[index[0]]
        x, y = kps[index][:, 0], kps[index][:, 1]
        length = ((x[0] - x[1]) ** 2 + (y[0] - y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(y[0] - y[1], x[0] - x[1]))
        polygon = cv2.ellipse2Poly(
            (int(np.mean(x)), int(np.mean(y))), (int(length / 2), stickwidth), int(angle), 0, 360, 1
        )
        out_img = cv2.fillConvexPoly(out_img.copy(), polygon, color)
    out_img = (out_img * 0.6).astype(np.uint8)
    for kp, color in zip(kps, color_list, strict=False):
        out_img = cv2.circle(out_img.copy(), (int(kp[0]), int(kp[1])), 10, color, -1)
    return out_img.astype(np.uint8)


def reference_resize_img(input_image: Image.Image, max_side=1280, min_side=1024, base_pixel_number=64) -> Image.Image:
    """InstantID's own `resize_img` (infer.py), without its unused size and padding options: the photo preparation
    the reference applies before face analysis."""
    w, h = input_image.size
    ratio = min_side / min(h, w)
    w, h = round(ratio * w), round(ratio * h)
    ratio = max_side / max(h, w)
    input_image = input_image.resize([round(ratio * w), round(ratio * h)], Image.BILINEAR)
    w_resize_new = (round(ratio * w) // base_pixel_number) * base_pixel_number
    h_resize_new = (round(ratio * h) // base_pixel_number) * base_pixel_number
    return input_image.resize([w_resize_new, h_resize_new], Image.BILINEAR)


def reference_control_mask(width: int, height: int, bbox) -> np.ndarray:
    """The face region of InstantID's demo ("enhance non-face region"): the face box at the generation size, 0..1."""
    control_mask = np.zeros([height, width, 3])
    x1, y1, x2, y2 = bbox
    x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
    control_mask[y1:y2, x1:x2] = 255
    return control_mask[:, :, 0] / 255.0


def reference_placement(points, photo_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Where (N, 2) points of a (width, height) photo land when the photo itself is resized to a (width, height)
    frame as ComfyUI resizes a hint (`comfy.utils.common_upscale(..., "center")`): cut symmetrically to the frame's
    aspect ratio, the margin rounded to whole pixels, then scaled to the frame. The reference draws the keypoints on
    the photo it generates from, so this is where its keypoints are. Float64 arithmetic, returned as float32 for
    float32 points (insightface's dtype, which the reference drawing computes in), else as float64."""
    points = np.asarray(points)
    (old_width, old_height), (width, height) = photo_size, size
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    scale = np.array([width / (old_width - 2 * x), height / (old_height - 2 * y)])
    placed = (points.astype(np.float64) - np.array([x, y])) * scale
    return placed.astype(np.float32 if points.dtype == np.float32 else np.float64)


def reference_hint(kps, photo_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """InstantID's own drawing of a photo's keypoints at their reference placement in a (width, height) frame, as a
    [1, 3, H, W] hint in 0..1."""
    drawing = reference_draw_kps(*size, reference_placement(kps, photo_size, size))
    return torch.from_numpy(drawing).float().div(255).movedim(-1, 0).unsqueeze(0)


def reference_box_mask(bbox, photo_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The reference demo's face region at a (width, height) frame: the photo's (x1, y1, x2, y2) face box placed like
    its keypoints (clipped to the frame, which the demo's box, on the photo it generates from, never leaves)."""
    corners = reference_placement(np.reshape(np.asarray(bbox, dtype=np.float64), (2, 2)), photo_size, size)
    return reference_control_mask(*size, np.clip(corners, 0, size).reshape(4))


def reference_attention_region(region_mask: np.ndarray, tokens: int) -> np.ndarray:
    """The reference attention's face mask at a layer of `tokens` query tokens: the H×W mask (at the generation size)
    sampled nearest-neighbour by the factor sqrt(H·W / tokens) in both directions, each layer cell taking the pixel
    at its top-left corner, flattened row by row as the tokens are."""
    height, width = region_mask.shape
    ratio = math.sqrt(height * width / tokens)
    rows = np.floor(np.arange(math.floor(height / ratio)) * ratio).astype(int)
    cols = np.floor(np.arange(math.floor(width / ratio)) * ratio).astype(int)
    return region_mask[np.ix_(rows, cols)].reshape(-1)
