"""IdentityNet as a ComfyUI ControlNet: the face tokens as its context, its hint drawn at the generation size, its
residuals limited to a region, and the checks that tell IdentityNet from other ControlNets."""

import itertools
import logging
from collections.abc import Sequence

import comfy.controlnet
import torch
from comfy.ldm.modules.attention import BasicTransformerBlock

from ...instantid_core.attention import RegionMask, identity_rows
from ...instantid_core.errors import InstantIDError
from ...instantid_core.identity import IdentityTokens
from ...instantid_core.keypoints import FaceRegion, KeypointLayout, draw_layouts
from ...instantid_core.model_facts import IDENTITYNET, IDENTITYNET_SHAPE
from .attn2_protocol import batch_pictures

log = logging.getLogger(__name__)

MAX_HINTS = 8
"""Hints an IdentityNet keeps, one per generation size and window of the batch (a hires pass alternates two sizes;
ComfyUI's context windows each take their own pictures)."""


class IdentityNetControl(comfy.controlnet.ControlNet):
    """IdentityNet: a ComfyUI ControlNet whose cross-attention context is the face tokens, not the text.

    The tokens travel with the ControlNet object (the identities, then the unconditional row, picked per image of a
    model call by `identity_rows`), so ControlNets chained before or after it keep their own context, two identities
    can each have their own IdentityNet, and every picture of a batch can have its own. An optional region limits its
    residuals. A keypoint image drawn by an InstantID node comes with its layouts: the hint is then drawn anew at the
    size being generated, as IdentityNet was trained.
    """

    identity_tokens: torch.Tensor
    region: RegionMask | None
    keypoints: tuple[KeypointLayout, ...] | None
    given_hint: torch.Tensor
    owner: str
    hints: dict[tuple, torch.Tensor]

    @classmethod
    def from_controlnet(
        cls,
        control_net,
        tokens: torch.Tensor,
        region: RegionMask | None,
        keypoints: tuple[KeypointLayout, ...] | None,
        given_hint: torch.Tensor,
        owner: str,
        hints: dict | None = None,
    ):
        """A copy of a loaded ControlNet that runs as IdentityNet with these (N + 1, T, D) tokens, the keypoint
        layouts to draw its hint from (or None) and the hint it was given ([B, 3, H, W]), with the hints already
        made of them; `owner` names the node in errors."""
        copy = comfy.controlnet.ControlNet.copy(control_net)
        copy.__class__ = cls
        copy.identity_tokens = tokens
        copy.region = region
        copy.keypoints = keypoints
        copy.given_hint = given_hint
        copy.owner = owner
        copy.hints = {} if hints is None else hints
        return copy

    def copy(self):
        """ComfyUI copies ControlNets per sampling; the copy stays an IdentityNet with the same tokens and hints."""
        return IdentityNetControl.from_controlnet(
            self, self.identity_tokens, self.region, self.keypoints, self.given_hint, self.owner, self.hints
        )

    def use_hint(self, width: int, height: int, pictures: tuple[int, ...] | None) -> None:
        """Make the hint the one for a model call at width×height holding `pictures` of the batch (None: all): the
        keypoint drawing at that size, so ComfyUI's resize of it to the generation size leaves it as drawn; without
        keypoints, the given hint (where ComfyUI runs the batch in windows, its pictures of it). Each is made once;
        when the hint changes, the hint ComfyUI prepared from the previous one is dropped: `cond_hint`, and the
        prepared hints newer ComfyUI keeps per latent size in `cond_hints`."""
        if self.keypoints is None and (pictures is None or self.given_hint.shape[0] == 1):
            hint = self.given_hint  # also after a window's pictures of it, in an earlier sampling
        else:
            key = (height, width, pictures)
            hint = self.hints.get(key)
            if hint is None:
                if len(self.hints) >= MAX_HINTS:
                    self.hints.pop(next(iter(self.hints)))
                hint = self.hints[key] = self._hint(width, height, pictures)
        if self.cond_hint_original is not hint:
            self.cond_hint_original = hint
            self.cond_hint = None
            prepared = getattr(self, "cond_hints", None)
            if prepared:
                prepared.clear()

    def _hint(self, width: int, height: int, pictures: tuple[int, ...] | None) -> torch.Tensor:
        """The keypoints of `pictures` (None: all) drawn at width×height, or the given hint's `pictures`, as
        [B, 3, H, W]; a batch shorter than the pictures repeats."""
        if self.keypoints is None:
            return self.given_hint[[p % self.given_hint.shape[0] for p in pictures]]
        layouts = self.keypoints
        if pictures is not None:
            layouts = tuple(layouts[p % len(layouts)] for p in pictures)
        return torch.from_numpy(draw_layouts(layouts, (width, height))).movedim(-1, 1).float() / 255.0

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        """The previous ControlNets' residuals (with the text context) plus ours (with the face tokens)."""
        pictures = batch_pictures(transformer_options)
        self.use_hint(x_noisy.shape[-1] * self.compression_ratio, x_noisy.shape[-2] * self.compression_ratio, pictures)
        previous = self.previous_controlnet
        control_prev = previous.get_control(x_noisy, t, cond, batched_number, transformer_options) if previous else None
        chunks = tuple(transformer_options["cond_or_uncond"])
        rows = x_noisy.shape[0] // len(chunks)
        identities = self.identity_tokens.shape[0] - 1
        context = self.identity_tokens[list(identity_rows(chunks, rows, identities, pictures, self.owner))]
        self.previous_controlnet = None  # our own residuals only; the previous ones are merged below
        try:
            own = super().get_control(
                x_noisy, t, dict(cond, crossattn_controlnet=context), batched_number, transformer_options
            )
        finally:
            self.previous_controlnet = previous
        if own is not None and self.region is not None:
            latent_hw = tuple(x_noisy.shape[-2:])

            def limited(r):
                region = self.region.for_layer(
                    *r.shape[-2:], rows, latent_hw, r.device, r.dtype, faces_mode="bilinear", pictures=pictures
                )
                return r * region.reshape(rows, 1, *r.shape[-2:]).repeat(len(chunks), 1, 1, 1)

            own = {name: [None if r is None else limited(r) for r in residuals] for name, residuals in own.items()}
        return _sum_controls(own, control_prev)


def _sum_controls(own: dict | None, previous: dict | None) -> dict | None:
    """Residuals of two ControlNets added position by position (either may be None)."""
    if own is None or previous is None:
        return own if own is not None else previous
    merged = {}
    for name in set(own) | set(previous):
        a, b = own.get(name, []), previous.get(name, [])
        merged[name] = [x if y is None else y if x is None else x + y for x, y in itertools.zip_longest(a, b)]
    return merged


def transformer_depths(control_model) -> tuple[tuple[int, ...], int]:
    """The number of transformer blocks in each input block and in the middle block of a ComfyUI ControlNet."""

    def depth(block) -> int:
        return sum(isinstance(m, BasicTransformerBlock) for m in block.modules())

    return tuple(depth(block) for block in control_model.input_blocks), depth(control_model.middle_block)


def check_identitynet(control_net) -> None:
    """Refuse a CONTROL_NET that is missing, is not an SDXL ControlNet (its context and ADM widths), or has not
    IdentityNet's block structure (a "mid" or "small" SDXL ControlNet). A full-size SDXL ControlNet of another kind
    has IdentityNet's shapes exactly and cannot be told apart."""
    expected = (
        f"load InstantID's IdentityNet ({IDENTITYNET.install_path}, from {IDENTITYNET.repo}) "
        "with ComfyUI's 'Load ControlNet Model' node"
    )
    if control_net is None:
        raise InstantIDError(f"No ControlNet is connected to 'control_net': {expected}.", "missing_input")
    if not isinstance(control_net, comfy.controlnet.ControlNet) or getattr(control_net, "control_model", None) is None:
        raise InstantIDError(
            f"The 'control_net' input is a {type(control_net).__name__}, not a ControlNet model: {expected}.",
            "wrong_input_type",
        )
    model = control_net.control_model
    widths = {block.attn2.to_k.in_features for block in model.modules() if isinstance(block, BasicTransformerBlock)}
    label_emb = getattr(model, "label_emb", None)
    first_linear = next((m for m in label_emb.modules() if isinstance(m, torch.nn.Linear)), None) if label_emb else None
    adm_width = first_linear.in_features if first_linear is not None else None
    if widths != {IDENTITYNET_SHAPE.context_width} or adm_width != IDENTITYNET_SHAPE.adm_width:
        found = (
            f"cross-attention width {', '.join(map(str, sorted(widths))) or 'none'}, ADM input {adm_width or 'none'}"
        )
        raise InstantIDError(
            "The ControlNet connected to 'control_net' is not an SDXL ControlNet with "
            f"{IDENTITYNET_SHAPE.context_width}-wide cross-attention ({found}), so it is not IdentityNet: {expected}.",
            "not_sdxl",
        )
    depths = transformer_depths(model)
    if depths != IDENTITYNET_SHAPE.depths:
        (found_input, found_middle), (want_input, want_middle) = depths, IDENTITYNET_SHAPE.depths
        raise InstantIDError(
            f"The ControlNet connected to 'control_net' has {sum(found_input) + found_middle} transformer blocks "
            f"({', '.join(str(d) for d in found_input if d)} in its input blocks, {found_middle} in the middle) where "
            f"IdentityNet has {sum(want_input) + want_middle} ({', '.join(str(d) for d in want_input if d)}, "
            f"{want_middle} in the middle): it is a smaller SDXL ControlNet (a 'mid' or 'small' one), not IdentityNet: "
            f"{expected}.",
            "wrong_controlnet",
        )


def apply_identitynet(
    positive,
    negative,
    control_net,
    tokens: IdentityTokens,
    image: torch.Tensor,
    strength: float,
    start_percent: float,
    end_percent: float,
    mask=None,
    vae=None,
    node: str = "the InstantID node",
    face_region: FaceRegion | None = None,
    layouts: Sequence[KeypointLayout] | None = None,
):
    """(positive, negative) with IdentityNet attached to every entry, chained after any ControlNet already there.

    With the `layouts` the keypoint image was drawn from (one per picture), IdentityNet draws them again at the
    generation size; without, it resizes the image like any ControlNet hint, and says so once in the log. With a
    `face_region` (drawn at the generation size too), IdentityNet's residuals stay inside it. `node` names the
    calling node in errors about its mask and in the log.
    """
    check_identitynet(control_net)
    if layouts is None:
        log.info(
            "%s: the keypoint image came without its keypoints, so IdentityNet resizes it to the generation size "
            "(its dots grow or shrink with it) instead of drawing it there: connect the keypoint node's 'kps' output "
            "to keep IdentityNet's 10-px dots.",
            node,
        )
    else:
        layouts = tuple(layouts)
    region = RegionMask.from_mask(mask, node, face_region)
    hint = image.movedim(-1, 1)
    stacked = tokens.stacked()
    copies = {}
    out = []
    for conditioning in (positive, negative):
        entries = []
        for embedding, options in conditioning:
            previous = options.get("control")
            if previous not in copies:  # one copy per previous ControlNet, shared by positive and negative
                net = IdentityNetControl.from_controlnet(control_net, stacked, region, layouts, hint, node)
                net = net.set_cond_hint(hint, strength, (start_percent, end_percent), vae=vae)
                net.set_previous_controlnet(previous)
                copies[previous] = net
            entries.append([embedding, dict(options, control=copies[previous], control_apply_to_uncond=False)])
        out.append(entries)
    return out[0], out[1]
