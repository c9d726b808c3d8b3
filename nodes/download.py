"""InstantID Download Models: the adapter, IdentityNet and antelopev2's two face models, opt-in and verified."""

from comfy_api.latest import io, ui

from ..instantid_core.download import INSIGHTFACE_LICENCE, INSTANTID_LICENCE, MODELS
from ..instantid_core.errors import InstantIDError
from .comfy_glue import model_setup
from .io_types import CATEGORY

CHOICES = {
    "all": MODELS,
    "InstantID adapter": MODELS[:1],
    "IdentityNet": MODELS[1:2],
    "antelopev2 face models": MODELS[2:],
}
"""What the node can fetch, by the name the user picks."""


class InstantIDDownloadModels(io.ComfyNode):
    """Downloads the model files InstantID needs into the standard folders, once the user accepts their licences."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDDownloadModels",
            display_name="InstantID Download Models",
            category=CATEGORY,
            description="Queue this node alone to fetch InstantID's adapter (1.7 GB), IdentityNet (2.5 GB) and "
            "antelopev2's face detector and recogniser (0.28 GB) from Hugging Face into models/instantid, "
            "models/controlnet/instantid and models/insightface/models/antelopev2. Each file is checked against its "
            "published sha256 before it is put in place; an interrupted download resumes on the next run; a file "
            "already there is kept. Nothing happens until you accept the licences.",
            inputs=[
                io.Combo.Input(
                    "models",
                    options=list(CHOICES),
                    default="all",
                    tooltip="Which files to fetch: all, or one part.",
                ),
                io.Boolean.Input(
                    "accept_licences",
                    default=False,
                    tooltip=f"Turn on only after reading the licences: {INSTANTID_LICENCE}; {INSIGHTFACE_LICENCE}.",
                ),
            ],
            outputs=[
                io.String.Output(
                    display_name="report",
                    tooltip="One line per file: downloaded and verified, or already in place (also on the node).",
                )
            ],
            is_output_node=True,
            not_idempotent=True,
        )

    @classmethod
    def execute(cls, models, accept_licences) -> io.NodeOutput:
        """Fetch the chosen files, or refuse until the licences are accepted."""
        chosen = CHOICES.get(models)
        if chosen is None:
            raise InstantIDError(f"Unknown choice {models!r}: use one of {', '.join(CHOICES)}.", "bad_setting")
        if not accept_licences:
            licences = sorted({model.licence for model in chosen})
            raise InstantIDError(
                "Nothing was downloaded: these models come with licences you must accept first ("
                + "; ".join(licences)
                + "). Read them, then turn on accept_licences and queue the node again.",
                "licence_not_accepted",
            )
        report = "\n".join(model_setup.download_models(chosen))
        return io.NodeOutput(report, ui=ui.PreviewText(report))
