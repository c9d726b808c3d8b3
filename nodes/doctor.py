"""InstantID Doctor: a report on the whole set-up, shown on the node."""

import logging

from comfy_api.latest import io, ui

from .comfy_glue import model_setup
from .io_types import CATEGORY

log = logging.getLogger(__name__)


class InstantIDDoctor(io.ComfyNode):
    """Checks versions, execution providers and every model file the pack uses; says how to fix each problem."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDDoctor",
            display_name="InstantID Doctor",
            category=CATEGORY,
            description="Queue this node alone to check the set-up: ComfyUI, Python, torch, insightface, "
            "onnxruntime, opencv and numpy versions (with combinations known to break), what the face models run "
            "on, CUDA as torch and onnxruntime see it, and every InstantID model file in every folder ComfyUI "
            "searches: found where, identified as what, and the exact fix for each problem. Changes nothing.",
            inputs=[],
            outputs=[
                io.String.Output(
                    display_name="report",
                    tooltip="The set-up report, with the fix for each problem (also on the node).",
                )
            ],
            is_output_node=True,
            not_idempotent=True,
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        """Write the report to the console and show it on the node."""
        report, problems = model_setup.doctor_report()
        (log.warning if problems else log.info)("%s", report)
        return io.NodeOutput(report, ui=ui.PreviewText(report))
