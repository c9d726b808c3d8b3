"""Face Crop and Face Paste: generate a face at full resolution in a crop of a photo, then put it back."""

import torch
from comfy_api.latest import io

from ..instantid_core.errors import InstantIDError
from ..instantid_core.face_crop import (
    CROP_SHAPES,
    PASTE_MODES,
    SIZE_STEP,
    FaceStitch,
    crop_face,
    crop_keypoints,
    paste_face,
)
from ..instantid_core.faces import choose_face
from ..instantid_core.images import from_float_rgb, to_float_rgb, to_image_batch
from ..instantid_core.keypoints import with_layouts
from .io_types import CATEGORY, INSTANTID_FACE, INSTANTID_STITCH, face_choice_inputs


class InstantIDFaceCrop(io.ComfyNode):
    """Crops one face of a photo, level and at a generation size, with its keypoints and an inpainting mask."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDFaceCrop",
            display_name="InstantID Face Crop",
            category=CATEGORY,
            description="A crop round one face of a photo, turned so the eyes are level and sized for generation, "
            "with the face's keypoint image and an inpainting mask in the crop, and the stitch that 'InstantID Face "
            "Paste' uses to put the generated face back. Beyond the photo's edge the crop repeats the edge pixels.",
            inputs=[
                io.Image.Input("image", tooltip="The photo whose face to replace (the one the faces were found in)."),
                INSTANTID_FACE.Input("face", tooltip="The photo's faces, from 'InstantID Face Analysis'."),
                *face_choice_inputs(),
                io.Int.Input(
                    "photo_index",
                    default=0,
                    min=0,
                    max=4095,
                    tooltip="Which photo of the batch to crop (the analysis of the same batch).",
                ),
                io.Float.Input(
                    "padding",
                    default=0.5,
                    min=0.0,
                    max=4.0,
                    step=0.05,
                    tooltip="Room round the face box on every side, in face-box sizes: 0.5 gives hair and neck for "
                    "the generation to blend into.",
                ),
                io.Boolean.Input(
                    "align",
                    default=True,
                    tooltip="Turn the crop so the eyes are level: IdentityNet was trained on upright faces. The paste "
                    "turns it back.",
                ),
                io.Int.Input(
                    "size",
                    default=1024,
                    min=SIZE_STEP,
                    max=4096,
                    step=SIZE_STEP,
                    tooltip="The crop's long side in pixels (a multiple of 64): the size the face is generated at.",
                ),
                io.Combo.Input(
                    "shape",
                    options=list(CROP_SHAPES),
                    default=CROP_SHAPES[0],
                    tooltip="'square', or the padded face box's shape (sides rounded to multiples of 64).",
                ),
                io.Float.Input(
                    "grow",
                    default=0.1,
                    min=-0.5,
                    max=2.0,
                    step=0.05,
                    tooltip="The mask is an ellipse round the face box: grow it by this many box sizes on every side "
                    "(negative shrinks it).",
                ),
                io.Float.Input(
                    "feather",
                    default=32.0,
                    min=0.0,
                    max=512.0,
                    step=1.0,
                    tooltip="Width in crop pixels of the mask's soft edge outside the ellipse: the blend between the "
                    "new face and the photo.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="crop", tooltip="The crop round the face, to encode and inpaint at this size."
                ),
                io.Image.Output(
                    display_name="keypoints",
                    tooltip="The face's keypoints in the crop, e.g. for Apply IdentityNet (Apply InstantID's image_kps "
                    "takes the crop itself).",
                ),
                io.Mask.Output(
                    display_name="mask",
                    tooltip="The inpainting mask in the crop: an ellipse round the face with a feathered edge.",
                ),
                INSTANTID_STITCH.Output(
                    display_name="stitch", tooltip="Where and how the crop was taken, for 'InstantID Face Paste'."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, image, face, face_choice, face_index, photo_index, padding, align, size, shape, grow, feather
    ) -> io.NodeOutput:
        """Crop the chosen face of the chosen photo."""
        result = face.result(photo_index)
        if photo_index >= image.shape[0]:
            raise InstantIDError(
                f"photo_index is {photo_index} but the image batch holds {image.shape[0]} photo(s): connect the photo "
                "the faces were found in.",
                "index_out_of_range",
            )
        chosen = result.faces[choose_face(result.faces, face_choice, face_index)]
        photo = to_float_rgb(image[photo_index : photo_index + 1])[0]
        crop, stitch = crop_face(photo, chosen, padding, align, size, shape, grow, feather)
        layout = crop_keypoints(stitch)
        keypoints = with_layouts(to_image_batch([layout.draw(stitch.crop_size)]), [layout])
        mask = torch.from_numpy(stitch.mask.copy()).unsqueeze(0)
        return io.NodeOutput(from_float_rgb([crop]), keypoints, mask, stitch)


class InstantIDFacePaste(io.ComfyNode):
    """Puts a generated crop back into the photo it was cropped from."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDFacePaste",
            display_name="InstantID Face Paste",
            category=CATEGORY,
            description="Puts the generated crop back where 'InstantID Face Crop' took it: turned and scaled back, "
            "blended with the feathered mask. Pixels outside the mask are the photo's own. Chain pastes to replace "
            "several faces of one photo.",
            inputs=[
                io.Image.Input(
                    "image", tooltip="The generated crop (a batch pastes each into the photo), at the crop's size."
                ),
                INSTANTID_STITCH.Input("stitch", tooltip="From 'InstantID Face Crop'."),
                io.Image.Input(
                    "photo",
                    tooltip="The photo the crop was taken from, or the output of a previous paste into it.",
                ),
                io.Combo.Input(
                    "mode",
                    options=list(PASTE_MODES),
                    default=PASTE_MODES[0],
                    tooltip="'changes': add what the generation changed in the crop to the photo (the photo keeps its "
                    "full resolution wherever the crop was left as it was). 'replace': blend the generated crop "
                    "itself in. 'auto': changes when the crop is at least the photo's resolution, else replace.",
                ),
                io.Boolean.Input(
                    "colour_match",
                    default=False,
                    tooltip="Shift the generated crop's colours so that outside the mask they average to the "
                    "photo's: hides a colour drift of the generation or the VAE at the seam.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="image", tooltip="The photo with the generated face pasted in, at the photo's size."
                )
            ],
        )

    @classmethod
    def execute(cls, image, stitch, photo, mode, colour_match) -> io.NodeOutput:
        """Paste every generated crop of the batch."""
        if not isinstance(stitch, FaceStitch):
            raise InstantIDError(
                f"'stitch' is a {type(stitch).__name__}, not the stitch of 'InstantID Face Crop': connect that node's "
                "stitch output.",
                "wrong_input_type",
            )
        crops, photos = to_float_rgb(image), to_float_rgb(photo)
        if len(photos) not in (1, len(crops)):
            raise InstantIDError(
                f"{len(crops)} generated crop(s) for a batch of {len(photos)} photos: connect one photo, or one per "
                "crop.",
                "batch_mismatch",
            )
        pasted = [
            paste_face(photos[index % len(photos)], crop, stitch, mode, colour_match)
            for index, crop in enumerate(crops)
        ]
        return io.NodeOutput(from_float_rgb(pasted))
