"""User-facing errors of the InstantID pack, each with a short stable code an API client can branch on.

ComfyUI reports an exception's type as `<module>.<class name>` in its error payload (`exception_type`), and a custom
node pack's modules are named by the folder ComfyUI loaded it from, so a plain exception class would put the install
path into every error title. Every code (ERROR_CODES) is therefore a subclass of InstantIDError named by the code in
the module `instantid`: ComfyUI reports `instantid.no_face`, whatever the install folder. Raise
`InstantIDError(message, code)`; catching InstantIDError catches every code.
"""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {
    "no_face": "No usable face: none found in a photo, a person, a pose or a saved face, or every photo skipped.",
    "index_out_of_range": "A face, photo or person number beyond what there is.",
    "missing_input": "Something the node needs is not connected, or a connected batch is empty.",
    "wrong_input_type": "An input is connected to the wrong kind of thing (another node's output type or shape).",
    "bad_setting": "A node setting outside what it accepts (an unknown choice, a value out of range).",
    "bad_weights": "Photo weights that cannot be read or do not fit the photos or the combination.",
    "bad_percent_range": "A start after its end, or a start or end outside 0..1.",
    "bad_keypoints": "Keypoints that cannot be placed or drawn (not five finite points, all on one spot).",
    "bad_keypoints_value": "A Keypoints Editor value that is not valid JSON of its version.",
    "bad_pose": "A body pose (POSE_KEYPOINT or its JSON) that is malformed or has no usable person.",
    "bad_views": "An angle sheet's list of views that names no view or an unknown one.",
    "batch_mismatch": "Counts that must agree do not: identities and pictures, crops and photos, poses and faces.",
    "mask_aspect": "A mask whose size or aspect ratio does not fit the picture being generated.",
    "size_mismatch": "A picture of another size than the one a crop, face or stitch was made from.",
    "recognizer_mismatch": "Faces of different recognisers used together, or a recogniser the settings refuse.",
    "bad_embeddings": "Face embeddings of the wrong shape, all zeros, or cancelling out when combined.",
    "people_layout": "People placed outside the picture or so close that their regions overlap.",
    "not_sdxl": "A model or ControlNet that is not SDXL, or does not fit the adapter layer for layer.",
    "wrong_controlnet": "An SDXL ControlNet that cannot be IdentityNet (fewer transformer blocks: a mid or small one).",
    "wrong_model_file": "A model file that is not what the loader expects: another kind of model, damaged or altered.",
    "model_not_found": "A model file or folder that is not where the loader looks.",
    "bad_face_pack": "A face model folder that is empty, nested too deep, broken or missing a model.",
    "bad_face_value": "A face given as text that is malformed, truncated or not a face value.",
    "file_exists": "A file that is there already and would be overwritten.",
    "bad_name": "A name that cannot be a file name.",
    "download_failed": "A download that failed or did not give the published file.",
    "licence_not_accepted": "A download of models whose licences have not been accepted.",
    "missing_dependency": "A Python package the pack needs cannot be imported.",
}
"""Every code the pack's errors carry, with what it means (the README's Troubleshooting table lists them)."""

MODULE = "instantid"
"""The module ComfyUI names the pack's error types by."""


class InstantIDError(Exception):
    """An error the user can fix: the message says what is wrong and what to do; `code` (ERROR_CODES) what kind of
    error it is. Instances are of the code's own subclass."""

    code = ""

    def __new__(cls, message: str = "", code: str | None = None):
        """An instance of the subclass of `code` (or of cls, when that is already one)."""
        if cls is InstantIDError:
            if code not in KINDS:
                raise ValueError(f"unknown InstantID error code {code!r}: add it to ERROR_CODES")
            cls = KINDS[code]
        return super().__new__(cls, message)

    def __init__(self, message: str = "", code: str | None = None):
        super().__init__(message)

    def __reduce__(self):
        """Pickled by code and message (the code's class is made here, not importable by name)."""
        return InstantIDError, (str(self), self.code)


KINDS: dict[str, type[InstantIDError]] = {
    code: type(code, (InstantIDError,), {"__module__": MODULE, "__qualname__": code, "code": code, "__doc__": meaning})
    for code, meaning in ERROR_CODES.items()
}
"""The class of every code: what ComfyUI's payload reports as `instantid.<code>`."""


def problem_of(check, *args) -> str | None:
    """What `check(*args)` finds wrong (its InstantIDError's message and code), or None when it passes: for the checks
    ComfyUI runs on a prompt before it starts, whose messages reach the client as text."""
    try:
        check(*args)
    except InstantIDError as e:
        return with_code(str(e), e.code)
    return None


def with_code(message: str, code: str) -> str:
    """A refusal's message as the pack words it for ComfyUI's validation report: the message, then its code."""
    if code not in ERROR_CODES:
        raise ValueError(f"unknown InstantID error code {code!r}: add it to ERROR_CODES")
    return f"{message} [{MODULE}.{code}]"
