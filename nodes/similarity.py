"""InstantID Face Similarity: score a batch of pictures against the reference faces and keep the best."""

from comfy_api.latest import io, ui

from ..instantid_core.face_analysis import NO_FACE_POLICIES, SKIP
from ..instantid_core.images import to_image_batch, to_uint8_rgb
from ..instantid_core.similarity import PAIRINGS, draw_score, ranking, score_images, summary
from .io_types import CATEGORY, FACEANALYSIS, INSTANTID_FACE

NO_SCORE = -1.0
"""best_score when no picture has a face (with no_face 'skip'); the summary says so."""


class InstantIDFaceSimilarity(io.ComfyNode):
    """Ranks pictures by how much their face looks like the reference person (cosine of the raw embeddings)."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDFaceSimilarity",
            display_name="InstantID Face Similarity",
            category=CATEGORY,
            description="The InstantID paper's face-fidelity metric: the cosine similarity of each picture's face "
            "to the reference identity. Generate a batch, score it, keep the best.",
            inputs=[
                FACEANALYSIS.Input(
                    "face_analysis", tooltip="The face models (the same ones that analysed the reference)."
                ),
                INSTANTID_FACE.Input("reference", tooltip="The reference faces, from 'InstantID Face Analysis'."),
                io.Image.Input("images", tooltip="The pictures to score, e.g. a generated batch."),
                io.Combo.Input(
                    "no_face",
                    options=list(NO_FACE_POLICIES),
                    default=SKIP,
                    tooltip="A picture without a face: rank it last as 'no face' (best_score is "
                    f"{NO_SCORE} when no picture has one), or stop with an error naming it.",
                ),
                io.Combo.Input(
                    "pairing",
                    options=list(PAIRINGS),
                    default=PAIRINGS[0],
                    optional=True,
                    tooltip="Score every picture against all references combined, or picture i against reference i "
                    "(a batch generated 'per picture': one person per picture, references in the batch's order).",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="ranked", tooltip="The pictures, best first."),
                io.Image.Output(display_name="best", tooltip="The best picture."),
                io.Image.Output(display_name="preview", tooltip="The pictures, best first, each with its score."),
                io.Float.Output(display_name="best_score", tooltip="The best picture's similarity (-1..1)."),
                io.String.Output(display_name="summary", tooltip="Every picture's score, best first."),
            ],
        )

    @classmethod
    def execute(cls, face_analysis, reference, images, no_face, pairing=PAIRINGS[0]) -> io.NodeOutput:
        """Analyse the pictures, score them and rank them."""
        pictures = to_uint8_rgb(images)
        candidates = face_analysis.analyze(pictures, "largest", 0, no_face, photo="Image")
        per_picture = pairing == PAIRINGS[1]
        scores = score_images(reference, candidates, per_picture)
        order = ranking(scores)
        ranked = images[[s.index for s in order]]
        preview = to_image_batch([draw_score(pictures[s.index], s) for s in order])
        text = summary(scores, len(reference.chosen_faces), per_picture)
        best_score = order[0].score if order[0].score is not None else NO_SCORE
        return io.NodeOutput(ranked, ranked[:1], preview, best_score, text, ui=ui.PreviewImage(preview, cls=cls))
