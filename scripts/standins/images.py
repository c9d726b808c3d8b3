"""Stand-in photos: pictures with "stand-in faces" that the stand-in antelopev2 pack (face_pack.py) detects.

The stand-in face pack has random weights, so it cannot find real faces. Instead its detector is a small hand-built
ONNX graph that finds one specific, deliberately unnatural pattern: a *stand-in face*. That is an upright square of
saturated magenta (red and blue 170..255, green near 0) with five darker magenta marks where a face has its eyes, nose
and mouth corners. The colour texture inside the square is a smooth random field drawn from an integer identity
seed: the stand-in recogniser turns that texture into the embedding, so two drawings of the same identity match and two
identities do not. Stand-in photos put such faces (with a muted "torso" under each) on muted backgrounds whose green
channel never falls far below red and blue, so that nothing but the faces looks like a face to the detector.

This lets every test tier run the real insightface code (SCRFD decoding, NMS, alignment, ArcFace) on pictures whose
"right answer" is known: where the faces are, how big, and who they are.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Where the five keypoints sit inside a stand-in face, as fractions of its side: the ArcFace alignment template
# (left eye, right eye, nose, left mouth corner, right mouth corner) divided by its 112-pixel crop size. The
# stand-in detector reports keypoints at these positions inside the box it finds.
KEYPOINTS_IN_FACE = np.array(
    [[0.3419, 0.4616], [0.6565, 0.4598], [0.5002, 0.6405], [0.3710, 0.8247], [0.6315, 0.8233]], dtype=np.float32
)
FACE_RED_BLUE_RANGE = (170, 255)  # red and blue of the identity texture
FACE_GREEN = 12
MARK_RED_BLUE = 110  # the darker marks at the keypoints (still magenta: green stays 0)
BACKGROUND_GREEN_MARGIN = 24  # background green is never more than this below min(red, blue)
IDENTITY_GRID = 5  # the identity texture is a smooth upsampling of a 5x5 grid of random colours
MIN_FACE_SIZE = 8


def identity_texture(identity: int, size: int) -> np.ndarray:
    """The smooth (size, size, 2) texture in 0..1 (red and blue weights) that encodes one identity seed."""
    rng = np.random.default_rng([int(identity), 0x1D])
    grid = rng.uniform(0.0, 1.0, size=(IDENTITY_GRID, IDENTITY_GRID, 2)).astype(np.float32)
    return np.clip(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def standin_face_patch(size: int, identity: int | None) -> np.ndarray:
    """A (size, size, 3) uint8 RGB stand-in face; identity None gives the neutral (mid-texture) face."""
    if size < MIN_FACE_SIZE:
        raise ValueError(f"a stand-in face needs at least {MIN_FACE_SIZE} pixels, got size={size}")
    low, high = FACE_RED_BLUE_RANGE
    if identity is None:
        texture = np.full((size, size, 2), 0.5, dtype=np.float32)
    else:
        texture = identity_texture(identity, size)
    patch = np.empty((size, size, 3), dtype=np.uint8)
    patch[..., 0] = np.round(low + (high - low) * texture[..., 0])
    patch[..., 1] = FACE_GREEN
    patch[..., 2] = np.round(low + (high - low) * texture[..., 1])
    mark = (MARK_RED_BLUE, 0, MARK_RED_BLUE)
    points = KEYPOINTS_IN_FACE * size
    eye_radius = max(1, round(0.05 * size))
    for x, y in points[:2]:
        cv2.circle(patch, (round(float(x)), round(float(y))), eye_radius, mark, thickness=-1, lineType=cv2.LINE_AA)
    cv2.circle(patch, tuple(round(float(v)) for v in points[2]), max(1, round(0.035 * size)), mark, -1, cv2.LINE_AA)
    cv2.line(
        patch,
        tuple(round(float(v)) for v in points[3]),
        tuple(round(float(v)) for v in points[4]),
        mark,
        thickness=max(1, round(0.04 * size)),
        lineType=cv2.LINE_AA,
    )
    return patch


def draw_standin_face(img: np.ndarray, cx: float, cy: float, size: float, identity: int) -> None:
    """Draw a stand-in face of side `size` centred at (cx, cy) into the HxWx3 uint8 RGB image, in place."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {img.shape} dtype {img.dtype}")
    side = int(round(size))
    patch = standin_face_patch(side, identity)
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    height, width = img.shape[:2]
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + side, width), min(y0 + side, height)
    if right <= left or bottom <= top:
        raise ValueError(f"stand-in face at ({cx}, {cy}) size {size} lies outside the {width}x{height} image")
    img[top:bottom, left:right] = patch[top - y0 : bottom - y0, left - x0 : right - x0]


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation RGB colour (float) whose green is not far below red and blue."""
    grey = rng.uniform(70.0, 190.0)
    colour = grey + rng.uniform(-18.0, 18.0, size=3)
    colour[1] = max(colour[1], min(colour[0], colour[2]) - BACKGROUND_GREEN_MARGIN / 2)
    return colour


def standin_photo(width: int, height: int, faces: list[tuple[float, float, float, int]], seed: int = 0) -> np.ndarray:
    """An HxWx3 uint8 RGB picture with the given stand-in faces (cx, cy, size, identity) on a muted background."""
    rng = np.random.default_rng([int(seed), 0xBA])
    top, bottom = _muted_colour(rng), _muted_colour(rng)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    picture = top[None, None, :] * (1.0 - ramp) + bottom[None, None, :] * ramp
    picture = np.broadcast_to(picture, (height, width, 3)).copy()
    picture += rng.normal(0.0, 4.0, size=picture.shape).astype(np.float32)
    for cx, cy, size, _identity in faces:
        torso = tuple(float(v) for v in _muted_colour(rng))
        centre = (round(cx), round(cy + 1.05 * size))
        cv2.ellipse(picture, centre, (round(0.95 * size), round(0.55 * size)), 0, 0, 360, torso, -1, cv2.LINE_AA)
    # Keep the whole background away from the stand-in face colour.
    floor = np.minimum(picture[..., 0], picture[..., 2]) - BACKGROUND_GREEN_MARGIN
    picture[..., 1] = np.maximum(picture[..., 1], floor)
    img = np.clip(np.round(picture), 0, 255).astype(np.uint8)
    for cx, cy, size, identity in faces:
        draw_standin_face(img, cx, cy, size, identity)
    return img


# name -> (width, height, faces): the stand-in inputs of the example and compat workflows.
INPUT_IMAGES: dict[str, tuple[int, int, list[tuple[float, float, float, int]]]] = {
    "instantid_face.png": (768, 1024, [(384, 430, 300, 1)]),
    "instantid_pose.png": (1024, 768, [(700, 330, 260, 2)]),
    "instantid_two_people.png": (1024, 768, [(290, 340, 200, 3), (730, 360, 240, 4)]),
    # Stand-ins for the photos that cubiq's published example workflows load (tests/data/compat/).
    "joseph-gonzalez-iFgRcqHznqg-unsplash.jpg": (832, 1248, [(416, 500, 360, 1)]),
    "miranda.jpg": (896, 1152, [(470, 480, 380, 5)]),
}


def input_image(name: str) -> np.ndarray:
    """The stand-in input picture `name` (of INPUT_IMAGES) as H×W×3 uint8 RGB, before it is saved."""
    width, height, faces = INPUT_IMAGES[name]
    return standin_photo(width, height, faces, seed=list(INPUT_IMAGES).index(name))


def write_input_images(input_dir: Path) -> list[Path]:
    """Write the stand-in input pictures (PNG and JPEG, by file name) into input_dir and return their paths."""
    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in INPUT_IMAGES:
        path = input_dir / name
        bgr = cv2.cvtColor(input_image(name), cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
        if not cv2.imwrite(str(path), bgr, params):
            raise OSError(f"could not write {path}")
        written.append(path)
    return written
