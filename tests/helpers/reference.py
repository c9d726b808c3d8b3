"""InstantID's own reference code, as published, for side-by-side comparisons: the keypoint drawing, the photo
resize before face analysis and the face-region mask of its demo."""

import math

import cv2
import numpy as np
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
