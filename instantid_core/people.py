"""Several people in one picture: where each person's face goes, and the region each person's identity keeps to.

Each person is one INSTANTID_FACE (one or more photos of them). A layout places every person's keypoints in the
generated picture: in equal columns left to right, where each stands in their own photo, or on the faces of a pose
photo in reading order. A person's region is the box round their placed keypoints, grown by `margin` keypoint
extents on every side (the core), with a linear ramp `feather` extents wide outside it; regions are exclusive, so
no person's identity reaches into another person's core. Everything is drawn at the size being generated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InstantIDError
from .faces import FaceAnalysisResult, InstantIDFaces
from .keypoints import FaceRegion, KeypointLayout, draw_keypoints, keypoint_extent

LEFT_TO_RIGHT = "left to right"
AS_IN_PHOTOS = "as in their photos"
POSE_PHOTO = "pose photo"
PEOPLE_LAYOUTS = (LEFT_TO_RIGHT, AS_IN_PHOTOS, POSE_PHOTO)
"""How people are placed: equal columns in input order, where each stands in their photo, or on a pose photo's faces."""

DEFAULT_MARGIN = 0.8
"""The core region's growth on every side of the keypoints' box, in keypoint extents: the face from chin to hairline
(a detector's face box is about 1.8 extents wide and 2.4 tall), and still apart from the neighbours' both in the
'left to right' layout at the default face_fraction (0.35 × 2.6 of a column) and in group photos."""
DEFAULT_FEATHER = 0.3
"""Width of the region's ramp from 1 to 0 outside its core, in keypoint extents."""


def first_result(person: InstantIDFaces, number: int) -> FaceAnalysisResult:
    """The first photo of a person in which a face was found; an error naming person `number` (from 1) if none."""
    for result in person.results:
        if not result.skipped:
            return result
    raise InstantIDError(
        f"Person {number}: no face in any of their {len(person.results)} photo(s): connect a photo where the "
        "face is clearly visible.",
        "no_face",
    )


def person_layouts(
    people: Sequence[InstantIDFaces], layout: str, face_fraction: float = 0.35, pose: InstantIDFaces | None = None
) -> tuple[KeypointLayout, ...]:
    """Where each person's face goes (one keypoint layout of one face each), by the chosen layout."""
    if layout not in PEOPLE_LAYOUTS:
        raise InstantIDError(
            f"Unknown people layout {layout!r}: use one of {', '.join(PEOPLE_LAYOUTS)}.", "bad_setting"
        )
    if layout == POSE_PHOTO:
        return _pose_layouts(len(people), pose)
    results = [first_result(person, number) for number, person in enumerate(people, 1)]
    if layout == AS_IN_PHOTOS:
        return tuple(KeypointLayout.of(result, "as in source") for result in results)
    return tuple(
        KeypointLayout.of(result, "centered", face_fraction, slot=(column, len(results)))
        for column, result in enumerate(results)
    )


def _pose_layouts(count: int, pose: InstantIDFaces | None) -> tuple[KeypointLayout, ...]:
    """Person k on face k (reading order) of the pose photo's first picture with a face."""
    if pose is None:
        raise InstantIDError(
            "The 'pose photo' layout places the people on the faces of a pose photo, but none is connected: "
            "connect 'InstantID Face Analysis' of a group photo to 'pose', or choose another layout.",
            "missing_input",
        )
    result = next((result for result in pose.results if not result.skipped), None)
    found = 0 if result is None else len(result.faces)
    if found < count:
        raise InstantIDError(
            f"The pose photo shows {found} face(s) for {count} people: use a photo with at least {count} faces, or "
            "fewer people.",
            "batch_mismatch",
        )
    return tuple(KeypointLayout.of(dataclasses.replace(result, chosen=index), "as in source") for index in range(count))


@dataclass(frozen=True, eq=False)
class PeopleRegions:
    """The people's keypoint layouts and the margin and feather of their regions, drawn at any picture size."""

    layouts: tuple[KeypointLayout, ...]
    margin: float = DEFAULT_MARGIN
    feather: float = DEFAULT_FEATHER
    _drawn: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if len(self.layouts) < 2:
            raise InstantIDError(f"Several people need at least two faces, got {len(self.layouts)}.", "people_layout")
        if not (np.isfinite(self.margin) and self.margin >= 0 and np.isfinite(self.feather) and self.feather >= 0):
            raise InstantIDError(
                f"margin ({self.margin:g}) and feather ({self.feather:g}) must be 0 or more: they are measured in "
                "face sizes (the keypoints' extent).",
                "bad_setting",
            )

    def keypoints(self, size: tuple[int, int]) -> list[np.ndarray]:
        """Each person's five keypoints placed in a (width, height) picture."""
        return [layout.placed(size)[layout.chosen] for layout in self.layouts]

    def draw(self, size: tuple[int, int]) -> np.ndarray:
        """One keypoint image with every person, at (width, height), as IdentityNet's reference rendering."""
        return draw_keypoints(self.keypoints(size), *size)

    def cores(self, size: tuple[int, int]) -> np.ndarray:
        """(N, 4) float64 boxes (x1, y1, x2, y2) of the people's core regions in a (width, height) picture."""
        boxes = []
        for kps in self.keypoints(size):
            kps = kps.astype(np.float64)
            grow = self.margin * keypoint_extent(kps)
            boxes.append(np.concatenate([kps.min(axis=0) - grow, kps.max(axis=0) + grow]))
        return np.array(boxes)

    def check(self, size: tuple[int, int]) -> None:
        """Refuse people whose core regions overlap, or who lie outside a (width, height) picture, naming them."""
        cores = self.cores(size)
        for number, (x1, y1, x2, y2) in enumerate(cores, 1):
            if x2 <= 0 or y2 <= 0 or x1 >= size[0] or y1 >= size[1]:
                raise InstantIDError(
                    f"Person {number} lies outside the {size[0]}×{size[1]} picture (their photo's face is cropped "
                    "away by its aspect ratio): choose the 'left to right' layout or a picture of the photo's shape.",
                    "people_layout",
                )
        for a in range(len(cores)):
            for b in range(a + 1, len(cores)):
                if _overlap(cores[a], cores[b]):
                    raise InstantIDError(
                        f"The regions of person {a + 1} and person {b + 1} overlap at margin {self.margin:g}: their "
                        "faces are too close for separate identities. Lower the margin, place the people further "
                        "apart (e.g. the 'left to right' layout), or use fewer people.",
                        "people_layout",
                    )

    def masks(self, size: tuple[int, int]) -> np.ndarray:
        """(N, H, W) float32 regions at (width, height): 1 in a person's core, ramping to 0 over the feather, and 0
        in every other person's core. Cached per size."""
        if size not in self._drawn:
            width, height = size
            xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
            extents = [keypoint_extent(kps) for kps in self.keypoints(size)]
            cores, ramps = [], []
            for (x1, y1, x2, y2), extent in zip(self.cores(size), extents, strict=True):
                dx = np.maximum(np.maximum(x1 - xs, xs - x2), 0.0)
                dy = np.maximum(np.maximum(y1 - ys, ys - y2), 0.0)
                distance = np.hypot(dx[None, :], dy[:, None])
                cores.append(distance == 0)
                width_px = self.feather * extent
                ramps.append(np.clip(1 - distance / width_px, 0, 1) if width_px > 0 else (distance == 0) * 1.0)
            masks = []
            for person, ramp in enumerate(ramps):
                others = np.any([core for other, core in enumerate(cores) if other != person], axis=0)
                masks.append(np.where(others, 0.0, ramp))
            self._drawn[size] = np.stack(masks).astype(np.float32)
        return self._drawn[size]

    def region(self, person: int) -> FaceRegion:
        """Person `person`'s (from 0) region, drawn at any generation size."""
        return lambda size: self.masks(tuple(size))[person : person + 1]


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two (x1, y1, x2, y2) boxes share an area."""
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
