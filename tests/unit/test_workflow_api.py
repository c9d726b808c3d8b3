"""The UI→API workflow converter follows the frontend's rules (tests/helpers/workflow_api.py)."""

import pytest

from scripts.harness.workflow_api import WorkflowError, lowered_prompt, ui_to_api

pytestmark = pytest.mark.unit

OBJECT_INFO = {
    "Loader": {"input": {"required": {"name": [["a.bin", "b.bin"]]}}, "input_order": {"required": ["name"]}},
    "Sampler": {
        "input": {
            "required": {
                "model": ["MODEL"],
                "seed": ["INT", {}],
                "steps": ["INT", {}],
                "sampler": ["COMBO", {"options": ["euler"]}],
                "text": ["STRING", {"forceInput": True}],
            },
            "optional": {"denoise": ["FLOAT", {}]},
        },
        "input_order": {"required": ["model", "seed", "steps", "sampler", "text"], "optional": ["denoise"]},
    },
    "Text": {"input": {"required": {"value": ["STRING", {}]}}},
    "Picture": {"input": {"required": {"image": [["x.png"], {"image_upload": True}], "scale": ["FLOAT", {}]}}},
}


def node(id_, type_, widgets=None, inputs=(), mode=0):
    """A UI-format node."""
    return {
        "id": id_,
        "type": type_,
        "mode": mode,
        "widgets_values": widgets,
        "inputs": [{"name": name, "type": kind, "link": link} for name, kind, link in inputs],
    }


def test_widget_values_map_by_position_skipping_control_after_generate_and_upload_values():
    workflow = {
        "nodes": [
            node(1, "Loader", ["b.bin"]),
            node(2, "Sampler", [7, "fixed", 20, "euler", 0.5], [("model", "MODEL", 1), ("text", "STRING", 2)]),
            node(3, "Text", ["hello"]),
            node(4, "Picture", ["x.png", "image", 2.0]),
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 3, 0, 2, 4, "STRING"]],
    }

    prompt = ui_to_api(workflow, OBJECT_INFO)

    assert prompt["2"]["inputs"] == {
        "model": ["1", 0],
        "seed": 7,
        "steps": 20,
        "sampler": "euler",
        "denoise": 0.5,
        "text": ["3", 0],
    }
    assert prompt["4"]["inputs"] == {"image": "x.png", "scale": 2.0}


def test_links_resolve_through_reroutes_primitives_and_bypassed_nodes_and_notes_are_dropped():
    workflow = {
        "nodes": [
            node(1, "Loader", ["a.bin"]),
            node(5, "Reroute", None, [("", "*", 1)]),
            node(6, "Loader", ["b.bin"], mode=4),
            node(7, "PrimitiveNode", [42]),
            node(8, "Note", ["read me"]),
            node(2, "Sampler", [0, "fixed", 3, "euler"], [("model", "MODEL", 3), ("seed", "INT", 4)]),
        ],
        "links": [[1, 1, 0, 5, 0, "MODEL"], [2, 5, 0, 6, 0, "MODEL"], [3, 6, 0, 2, 0, "MODEL"], [4, 7, 0, 2, 1, "INT"]],
    }
    workflow["nodes"][2]["inputs"] = [{"name": "model", "type": "MODEL", "link": 2}]

    prompt = ui_to_api(workflow, OBJECT_INFO)

    assert set(prompt) == {"1", "2"}
    assert prompt["2"]["inputs"]["model"] == ["1", 0] and prompt["2"]["inputs"]["seed"] == 42


def test_an_unknown_node_type_or_a_missing_required_widget_value_is_an_error():
    with pytest.raises(WorkflowError, match="'Mystery' is not installed"):
        ui_to_api({"nodes": [node(1, "Mystery", [])], "links": []}, OBJECT_INFO)
    with pytest.raises(WorkflowError, match="no widget value for required input 'steps'"):
        ui_to_api({"nodes": [node(2, "Sampler", [1, "fixed"])], "links": []}, OBJECT_INFO)


def test_lowering_caps_the_batch_unless_each_picture_has_its_own_identity_or_a_link_sets_it():
    info = OBJECT_INFO | {
        "EmptyLatentImage": {
            "input": {"required": {name: ["INT", {}] for name in ("width", "height", "batch_size")}},
            "input_order": {"required": ["width", "height", "batch_size"]},
        },
        "Patch": {"input": {"required": {"combine_embeds": [["average", "per picture"]]}}},
        "Sheet": {"input": {"required": {}}, "output": ["INT"]},
    }

    def lowered(combine: str) -> dict:
        workflow = {"nodes": [node(1, "EmptyLatentImage", [1024, 1024, 4]), node(2, "Patch", [combine])], "links": []}
        return lowered_prompt(workflow, info, 128, 1, max_batch=2)["1"]["inputs"]

    assert lowered("average") == {"width": 128, "height": 128, "batch_size": 2}
    assert lowered("per picture") == {"width": 128, "height": 128, "batch_size": 4}  # one picture per face
    linked = {
        "nodes": [node(1, "EmptyLatentImage", [1024, 1024, 4], [("batch_size", "INT", 7)]), node(2, "Sheet")],
        "links": [[7, 2, 0, 1, 0, "INT"]],
    }
    assert lowered_prompt(linked, info, 128, 1, max_batch=2)["1"]["inputs"]["batch_size"] == ["2", 0]
