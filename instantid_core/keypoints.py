"""The five-keypoint face image IdentityNet is conditioned on, and the geometry to place keypoints in a frame.

Keypoints are (5, 2) arrays of (x, y) in pixels, in insightface's order: left eye, right eye, nose, left and right
mouth corner (as seen in the image). Coordinates are continuous, with (0, 0) at the top-left corner of the
top-left pixel, so pixel (i, j) covers [i, i+1) × [j, j+1).

Keypoints keep their dtype: insightface's are float32, and the reference rendering does its arithmetic in float32,
which rounds differently from float64 on about 2 in 10,000 face-like keypoint sets (a limb one pixel off). Placement
computes in float64 and hands back the keypoints' own dtype, so an identity placement changes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .dependencies import cv2
from .errors import InstantIDError
from .images import to_image_batch

logger = logging.getLogger(__name__)

KEYPOINT_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 255),
)
"""RGB colour of each of the five keypoints, as in the reference InstantID rendering."""

LIMBS: tuple[tuple[int, int], ...] = ((0, 2), (1, 2), (3, 2), (4, 2))
"""Keypoint pairs joined by a limb (each eye and mouth corner to the nose); a limb takes its first point's colour."""

LIMB_HALF_WIDTH = 4
"""Minor semi-axis of a limb's ellipse, in pixels."""

LIMB_DIMMING = 0.6
"""Factor applied to the whole image after the limbs are drawn and before the points."""

POINT_RADIUS = 10
"""Radius of each keypoint's filled circle, in pixels."""

PLACEMENTS = ("as in source", "centered")
"""Where keypoints go in the target frame: as in their photo (centre-cropped), or re-centred and scaled."""

SMALL_FACE_WARNING_PX = 64.0
"""Keypoint extent (pixels) below which the face is too small for IdentityNet to carry the identity well.

At 1024×1024 that is a face about an eighth of the image wide, which the latent sees as ~16 pixels: below it,
IdentityNet's circles (radius 10) merge and identity drops markedly.
"""


def as_keypoints(kps: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Validate five finite (x, y) keypoints and return them as a (5, 2) array: float32 stays float32 (insightface's
    dtype, which the reference rendering computes in), anything else becomes float64."""
    arr = np.asarray(kps)
    if arr.dtype != np.float32:
        arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != (5, 2):
        raise InstantIDError(
            f"Face keypoints must be five (x, y) points, got an array of shape {arr.shape}", "bad_keypoints"
        )
    if not np.isfinite(arr).all():
        raise InstantIDError(f"Face keypoints contain a non-finite coordinate: {arr.tolist()}", "bad_keypoints")
    return arr


FULL_OPACITY: tuple[float, ...] = (1.0,) * 5
"""Every keypoint drawn in its full colour, as the reference does."""


def as_opacity(opacity: Sequence[float]) -> tuple[float, ...]:
    """Validate five keypoint opacities in 0..1 and return them as a tuple of floats."""
    values = tuple(float(v) for v in opacity)
    if len(values) != 5 or not all(0.0 <= v <= 1.0 for v in values):
        raise InstantIDError(
            f"Keypoint opacity must be five numbers from 0 to 1 (one per keypoint), got {list(opacity)}",
            "bad_keypoints",
        )
    return values


def _dimmed(color: tuple[int, int, int], opacity: float) -> tuple[int, ...]:
    """A keypoint colour drawn at this opacity over the black background."""
    return color if opacity == 1.0 else tuple(round(c * opacity) for c in color)


def draw_keypoints(
    faces_kps: Sequence[np.ndarray], width: int, height: int, opacity: Sequence[float] = FULL_OPACITY
) -> np.ndarray:
    """Render the keypoints of one or more faces as the reference InstantID image: HxWx3 uint8 RGB, black background.

    All faces' limbs are drawn first, the image is dimmed by LIMB_DIMMING, then all faces' points are drawn. The
    limb arithmetic is the reference's, step for step on numpy scalars of the keypoints' dtype (float32 stays float32),
    so that every truncation to whole pixels lands where the reference's does. `opacity` (one per keypoint, for every
    face) draws a point, and the limb that starts at it, dimmer over the black background: a known way to loosen
    IdentityNet's hold where the face should differ; all ones is the reference rendering.
    """
    if width < 1 or height < 1:
        raise InstantIDError(f"The keypoint image must be at least 1×1 pixels, got {width}×{height}", "bad_setting")
    faces = [as_keypoints(kps) for kps in faces_kps]
    colors = [_dimmed(color, alpha) for color, alpha in zip(KEYPOINT_COLORS, as_opacity(opacity), strict=True)]
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for kps in faces:
        for first, second in LIMBS:
            x, y = kps[[first, second], 0], kps[[first, second], 1]
            length = ((x[0] - x[1]) ** 2 + (y[0] - y[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(y[0] - y[1], x[0] - x[1]))
            center = (int(np.mean(x)), int(np.mean(y)))
            polygon = cv2.ellipse2Poly(center, (int(length / 2), LIMB_HALF_WIDTH), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, colors[first])
    canvas = (canvas * LIMB_DIMMING).astype(np.uint8)
    for kps in faces:
        for (x, y), color in zip(kps, colors, strict=True):
            cv2.circle(canvas, (int(x), int(y)), POINT_RADIUS, color, -1)
    return canvas


def keypoint_extent(kps: Sequence[Sequence[float]] | np.ndarray) -> float:
    """The larger side, in pixels, of the bounding box of the five keypoints."""
    arr = as_keypoints(kps).astype(np.float64)
    return float((arr.max(axis=0) - arr.min(axis=0)).max())


def face_too_small(kps: Sequence[Sequence[float]] | np.ndarray, threshold_px: float = SMALL_FACE_WARNING_PX) -> bool:
    """True when the keypoints span fewer than threshold_px pixels, so identity would suffer."""
    return keypoint_extent(kps) < threshold_px


def place_as_source(
    kps: Sequence[Sequence[float]] | np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]
) -> np.ndarray:
    """Map keypoints of a (width, height) source image into a (width, height) target, as a centre-cropped resize would.

    Convention (the same as ComfyUI's image upscale with crop = "center"): the source is cropped symmetrically to the
    target's aspect ratio, the crop offset rounded to whole pixels, and that crop is scaled to the target size.
    Points in the cropped-away margin land outside the target frame. Computed in float64, returned in the keypoints'
    dtype.
    """
    arr = as_keypoints(kps)
    return _as_source_map(src_size, dst_size)(arr).astype(arr.dtype)


def place_centered(
    kps: Sequence[Sequence[float]] | np.ndarray, dst_size: tuple[int, int], face_fraction: float
) -> np.ndarray:
    """Move the keypoints' bounding-box centre to the frame centre and scale them uniformly so that their extent
    covers face_fraction of the frame's shorter side. Computed in float64, returned in the keypoints' dtype."""
    arr = as_keypoints(kps)
    return _centered_map(arr, dst_size, face_fraction)(arr).astype(arr.dtype)


PointMap = Callable[[np.ndarray], np.ndarray]
"""A placement of points: (N, 2) pixel coordinates in their photo → float64 coordinates in the target frame."""


def _as_source_map(src_size: tuple[int, int], dst_size: tuple[int, int]) -> PointMap:
    """The placement of place_as_source from a source to a target size."""
    (src_w, src_h), (dst_w, dst_h) = _size(src_size, "source"), _size(dst_size, "target")
    src_aspect, dst_aspect = src_w / src_h, dst_w / dst_h
    crop_x = crop_y = 0
    if src_aspect > dst_aspect:
        crop_x = round((src_w - src_w * (dst_aspect / src_aspect)) / 2)
    elif src_aspect < dst_aspect:
        crop_y = round((src_h - src_h * (src_aspect / dst_aspect)) / 2)
    crop = np.array([crop_x, crop_y])
    scale = np.array([dst_w / (src_w - 2 * crop_x), dst_h / (src_h - 2 * crop_y)])
    return lambda points: (np.asarray(points, dtype=np.float64) - crop) * scale


def _centered_map(
    kps: np.ndarray, dst_size: tuple[int, int], face_fraction: float, slot: tuple[int, int] = (0, 1)
) -> PointMap:
    """The placement of place_centered for these keypoints (one uniform scale and an offset), for any points; with a
    slot (k, n) the frame is the k-th of n equal columns of the target, left to right."""
    dst_w, dst_h = _size(dst_size, "target")
    if not 0 < face_fraction <= 1:
        raise InstantIDError(f"face_fraction must be in (0, 1], got {face_fraction}", "bad_setting")
    arr = as_keypoints(kps).astype(np.float64)
    extent = keypoint_extent(arr)
    if extent == 0:
        raise InstantIDError(
            "The five face keypoints all lie on one spot, so they cannot be scaled: check the face", "bad_keypoints"
        )
    column, columns = slot
    column_w = dst_w / columns
    centre = (arr.max(axis=0) + arr.min(axis=0)) / 2
    scale = face_fraction * min(column_w, dst_h) / extent
    offset = np.array([column_w * (column + 0.5), dst_h / 2]) - centre * scale
    return lambda points: np.asarray(points, dtype=np.float64) * scale + offset


def _size(size: tuple[int, int], what: str) -> tuple[int, int]:
    width, height = size
    if width < 1 or height < 1:
        raise InstantIDError(f"The {what} size must be at least 1×1 pixels, got {width}×{height}", "bad_setting")
    return int(width), int(height)


def face_box_mask(boxes: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    """An H×W float32 mask, 1 inside each (x1, y1, x2, y2) box and 0 elsewhere, as the reference demo makes its face
    region: corners truncated to whole pixels, x2 and y2 excluded (and clipped to the frame)."""
    mask = np.zeros((height, width), dtype=np.float32)
    for box in boxes:
        x1, y1, x2, y2 = (int(max(float(v), 0.0)) for v in box)
        mask[y1:y2, x1:x2] = 1.0
    return mask


@dataclass(frozen=True)
class KeypointTransform:
    """A move of placed keypoints within their frame: scaled by `scale` and turned by `rotate` degrees (clockwise as
    seen) about the centre (mean) of the chosen face's keypoints, then shifted by `move_x` and `move_y` fractions of the
    frame's width and height (right and down)."""

    scale: float = 1.0
    rotate: float = 0.0
    move_x: float = 0.0
    move_y: float = 0.0

    def __post_init__(self):
        values = (self.scale, self.rotate, self.move_x, self.move_y)
        if not all(math.isfinite(v) for v in values) or self.scale <= 0:
            raise InstantIDError(
                f"A keypoint transform needs a scale above 0 and finite values, got scale {self.scale:g}, rotate "
                f"{self.rotate:g}, move {self.move_x:g}, {self.move_y:g}",
                "bad_setting",
            )

    def point_map(self, kps: np.ndarray, size: tuple[int, int]) -> PointMap:
        """This transform, for keypoints `kps` (the face it turns about) placed in a frame of this (width, height)."""
        width, height = _size(size, "target")
        centre = np.asarray(kps, dtype=np.float64).mean(axis=0)
        turn = math.radians(self.rotate)
        matrix = self.scale * np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        shift = centre + np.array([self.move_x * width, self.move_y * height])
        return lambda points: (np.asarray(points, dtype=np.float64) - centre) @ matrix.T + shift


@dataclass(frozen=True)
class Jitter:
    """Limits of a seeded random change of a keypoint transform: the scale multiplied by up to 1 ± `scale`, up to
    ± `rotate` degrees more turn, and up to ± `move` of the frame's width and height more shift."""

    scale: float = 0.0
    rotate: float = 0.0
    move: float = 0.0
    seed: int = 0

    def __post_init__(self):
        limits = (self.scale, self.rotate, self.move)
        if not all(math.isfinite(v) and v >= 0 for v in limits) or self.scale >= 1:
            raise InstantIDError(
                f"Jitter limits must be 0 or more (the scale's below 1), got scale {self.scale:g}, rotate "
                f"{self.rotate:g}, move {self.move:g}",
                "bad_setting",
            )

    def applied(self, base: KeypointTransform, picture: int) -> KeypointTransform:
        """`base`, changed at random within the limits for picture number `picture` (the same seed and number: the
        same change)."""
        if (self.scale, self.rotate, self.move) == (0, 0, 0):
            return base
        ds, dr, dx, dy = np.random.default_rng([self.seed, picture]).uniform(-1.0, 1.0, size=4)
        return KeypointTransform(
            scale=base.scale * (1 + ds * self.scale),
            rotate=base.rotate + dr * self.rotate,
            move_x=base.move_x + dx * self.move,
            move_y=base.move_y + dy * self.move,
        )


FACE_BOX_EXTENTS = (1.8, 2.4)
"""Width and height of a face box drawn round keypoints without a detector's box, in keypoint extents: about what
SCRFD's boxes measure round its keypoints."""


def estimated_face_box(kps: np.ndarray) -> np.ndarray:
    """An (x1, y1, x2, y2) face box centred on the keypoints, FACE_BOX_EXTENTS keypoint extents wide and tall."""
    arr = as_keypoints(kps).astype(np.float64)
    centre = (arr.max(axis=0) + arr.min(axis=0)) / 2
    half = np.array(FACE_BOX_EXTENTS) * keypoint_extent(arr) / 2
    return np.concatenate([centre - half, centre + half])


@dataclass(frozen=True, eq=False)
class KeypointLayout:
    """Where faces go in the generated picture, for any picture size: their keypoints and boxes in their photo's own
    pixels, and the placement rule. IdentityNet draws it at the size being generated, so the dots keep the size
    IdentityNet was trained on (radius 10 px) whatever the photo's size."""

    kps: tuple[np.ndarray, ...]
    boxes: tuple[np.ndarray, ...]
    source_size: tuple[int, int]
    placement: str
    face_fraction: float = 0.35
    chosen: int = 0  # the face 'centered' scales and centres, and transforms turn about; the others move with it
    slot: tuple[int, int] = (0, 1)  # 'centered' centres in column k of n equal columns (one person of n)
    opacity: tuple[float, ...] = FULL_OPACITY  # per keypoint, for every face (draw_keypoints)
    transforms: tuple[KeypointTransform, ...] = ()  # applied in order after the placement

    @classmethod
    def of(
        cls,
        result,
        placement: str,
        face_fraction: float = 0.35,
        all_faces: bool = False,
        slot: tuple[int, int] = (0, 1),
    ) -> KeypointLayout:
        """The layout of one analysed photo (a FaceAnalysisResult): its chosen face, or every face of it; a slot
        (k, n) centres it in the k-th of n columns."""
        if placement not in PLACEMENTS:
            raise InstantIDError(
                f"Unknown keypoint placement {placement!r}: use one of {', '.join(PLACEMENTS)}.", "bad_setting"
            )
        faces = result.faces if all_faces else (result.face,)
        layout = cls(
            kps=tuple(as_keypoints(face.kps) for face in faces),
            boxes=tuple(np.asarray(face.bbox) for face in faces),
            source_size=result.face.image_size,
            placement=placement,
            face_fraction=face_fraction,
            chosen=faces.index(result.face),
            slot=slot,
        )
        layout.point_map(layout.source_size)  # refuses a bad face_fraction or coinciding keypoints now
        return layout

    @classmethod
    def in_frame(
        cls, points: Sequence[Sequence[float]], size: tuple[int, int], opacity: Sequence[float] = FULL_OPACITY
    ) -> KeypointLayout:
        """The layout of one face given by frame-normalised keypoints (x and y as fractions of the frame's width and
        height) in a frame of this (width, height), kept in place at any generation size of the same aspect ratio
        (centre-cropped otherwise); its face box is estimated_face_box."""
        kps = as_keypoints(np.asarray(points, dtype=np.float64) * np.array(_size(size, "frame")))
        return cls(
            kps=(kps,),
            boxes=(estimated_face_box(kps),),
            source_size=_size(size, "frame"),
            placement="as in source",
            opacity=as_opacity(opacity),
        )

    def transformed(self, transform: KeypointTransform) -> KeypointLayout:
        """This layout with one more transform after its placement and earlier transforms."""
        return dataclasses.replace(self, transforms=(*self.transforms, transform))

    def point_map(self, size: tuple[int, int]) -> PointMap:
        """The placement of photo pixels into a frame of this (width, height), then the transforms."""
        if self.placement == "as in source":
            placement = _as_source_map(self.source_size, size)
        else:
            placement = _centered_map(self.kps[self.chosen], size, self.face_fraction, self.slot)
        maps = [placement]
        chosen = placement(self.kps[self.chosen])
        for transform in self.transforms:
            maps.append(transform.point_map(chosen, size))
            chosen = maps[-1](chosen)
        return functools.reduce(lambda first, then: lambda points: then(first(points)), maps)

    def placed(self, size: tuple[int, int]) -> list[np.ndarray]:
        """Every face's keypoints placed in a frame of this (width, height), in the keypoints' own dtype."""
        point_map = self.point_map(size)
        return [point_map(kps).astype(kps.dtype) for kps in self.kps]

    def draw(self, size: tuple[int, int]) -> np.ndarray:
        """The keypoint image at this (width, height): the reference rendering of the placed keypoints; warns when
        the chosen face ends up too small for IdentityNet."""
        placed = self.placed(size)
        chosen = placed[self.chosen]
        if face_too_small(chosen):
            logger.warning(
                "The face in the %d×%d keypoint image spans %.0f px, under %.0f px: identity will be weak. "
                "Generate a larger image or place the face bigger.",
                *size,
                keypoint_extent(chosen),
                SMALL_FACE_WARNING_PX,
            )
        return draw_keypoints(placed, *size, self.opacity)

    def box_mask(self, size: tuple[int, int]) -> np.ndarray:
        """The faces' boxes, placed like their keypoints (a turned box by the box round its corners), as an H×W mask
        at this (width, height)."""
        point_map = self.point_map(size)
        boxes = []
        for x1, y1, x2, y2 in self.boxes:
            corners = point_map(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], dtype=np.float64))
            boxes.append(np.concatenate([corners.min(axis=0), corners.max(axis=0)]))
        return face_box_mask(boxes, *_size(size, "target"))


@dataclass(frozen=True, eq=False)
class PlacedKeypoints:
    """Keypoint layouts (one per picture) and the frame size they were drawn at: what the keypoint nodes pass along
    INSTANTID_KEYPOINTS edges, for transforms and other keypoint nodes downstream."""

    layouts: tuple[KeypointLayout, ...]
    size: tuple[int, int]

    def images(self):
        """The keypoint images of the layouts at the frame size, as an IMAGE batch marked with its layouts."""
        return with_layouts(to_image_batch(list(draw_layouts(self.layouts, self.size))), self.layouts)

    def box_masks(self) -> np.ndarray:
        """The face boxes of the layouts at the frame size, as a B×H×W float32 batch of masks."""
        return layouts_box_masks(self.layouts, self.size)


def transformed(
    placed: PlacedKeypoints, transform: KeypointTransform, variants: int, jitter: Jitter
) -> PlacedKeypoints:
    """Every layout `variants` times in a row, each with `transform` jittered for its own picture number."""
    if variants < 1:
        raise InstantIDError(f"variants must be at least 1, got {variants}", "bad_setting")
    layouts = []
    for layout in placed.layouts:
        for _ in range(variants):
            layouts.append(layout.transformed(jitter.applied(transform, len(layouts))))
    return PlacedKeypoints(tuple(layouts), placed.size)


def draw_layouts(layouts: Sequence[KeypointLayout], size: tuple[int, int]) -> np.ndarray:
    """The keypoint images of several layouts at this (width, height), as a B×H×W×3 uint8 batch."""
    return np.stack([layout.draw(size) for layout in layouts])


def layouts_box_masks(layouts: Sequence[KeypointLayout], size: tuple[int, int]) -> np.ndarray:
    """The face boxes of several layouts at this (width, height), as a B×H×W float32 batch of masks."""
    return np.stack([layout.box_mask(size) for layout in layouts])


FaceRegion = Callable[[tuple[int, int]], np.ndarray]
"""A region drawn at the size being generated: (width, height) → [M,] H×W float32 masks (0..1)."""


def face_boxes_region(layouts: Sequence[KeypointLayout]) -> FaceRegion:
    """The face boxes of keypoint layouts (one per picture) as a region drawn at any generation size."""
    return functools.partial(layouts_box_masks, tuple(layouts))


LAYOUTS_ATTRIBUTE = "instantid_keypoint_layouts"
"""The attribute that carries a keypoint image's layouts (one per picture) along the graph's IMAGE edges."""


def with_layouts(images, layouts: Sequence[KeypointLayout]):
    """The IMAGE batch `images`, marked as the drawings of `layouts` (one per picture), so that IdentityNet can draw
    them again at the generation size. A node that makes a new tensor from it (a resize, a batch) drops the mark."""
    if len(layouts) != len(images):
        raise InstantIDError(
            f"{len(layouts)} keypoint layouts for a batch of {len(images)} keypoint images", "batch_mismatch"
        )
    setattr(images, LAYOUTS_ATTRIBUTE, tuple(layouts))
    return images


def layouts_of(images) -> tuple[KeypointLayout, ...] | None:
    """The layouts an IMAGE batch of keypoint images was drawn from, if an InstantID node drew it."""
    return getattr(images, LAYOUTS_ATTRIBUTE, None)


def identitynet_keypoints(image, placed: PlacedKeypoints | None, node: str):
    """The keypoint image for IdentityNet and the layouts it was drawn from: the placed keypoints' (drawn at their
    frame) when a keypoint node's 'kps' is connected; else the image, with the layouts an InstantID node marked it
    with (the way ComfyUI_InstantID graphs hand them over), None when it carries none. `node` names the node in the
    error when neither is connected."""
    if placed is not None:
        return placed.images(), placed.layouts
    if image is None:
        raise InstantIDError(
            f"{node}: connect the keypoints: 'kps' from an InstantID keypoint node, or a keypoint image to 'image'.",
            "missing_input",
        )
    return image, layouts_of(image)


def faces_region_of(layouts: Sequence[KeypointLayout] | None, node: str) -> FaceRegion:
    """The face boxes of the keypoint layouts, as a region; an error naming `node` when there are none (a keypoint
    image that came without them: nothing says where its faces are)."""
    if layouts is None:
        raise InstantIDError(
            f"{node}: face_region needs to know where the face is, but the keypoints came as a bare image (not "
            "straight from an InstantID keypoints node, or resized or batched on the way): connect the keypoint "
            "node's 'kps' output, or turn face_region off and connect a mask instead.",
            "wrong_input_type",
        )
    return face_boxes_region(layouts)
