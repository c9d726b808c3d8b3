"""The pack's nodes as a real ComfyUI server publishes and runs them."""

import pytest

from helpers.server_prompts import FACE_A, analysis_prompt

pytestmark = pytest.mark.server

NODES = {  # node id -> (display name, output types)
    "InstantIDLoadAdapter": ("Load InstantID Adapter", ["INSTANTID"]),
    "InstantIDLoadFaceAnalysis": ("Load InstantID Face Analysis", ["FACEANALYSIS"]),
    "InstantIDAnalyzeFaces": ("InstantID Face Analysis", ["INSTANTID_FACE", "IMAGE", "MASK"]),
    "InstantIDKeypoints": ("InstantID Keypoints", ["IMAGE", "MASK", "INSTANTID_KEYPOINTS"]),
    "InstantIDKeypointsEditor": ("InstantID Keypoints Editor", ["IMAGE", "MASK", "INSTANTID_KEYPOINTS"]),
    "InstantIDTransformKeypoints": ("InstantID Transform Keypoints", ["IMAGE", "MASK", "INSTANTID_KEYPOINTS"]),
    "InstantIDKeypointsFromPose": ("InstantID Keypoints from Pose", ["IMAGE", "MASK", "INSTANTID_KEYPOINTS"]),
    "InstantIDPoseFromJSON": ("InstantID Pose from JSON", ["POSE_KEYPOINT"]),
    "InstantIDAngleSheet": ("InstantID Angle Sheet", ["IMAGE", "MASK", "INSTANTID_KEYPOINTS", "INT"]),
    "InstantIDApplyIdentityNet": ("Apply IdentityNet", ["CONDITIONING", "CONDITIONING"]),
    "InstantIDPatchAttention": ("InstantID Patch Attention", ["MODEL"]),
    "InstantIDApply": ("Apply InstantID", ["MODEL", "CONDITIONING", "CONDITIONING"]),
    "InstantIDApplyAdvanced": ("Apply InstantID Advanced", ["MODEL", "CONDITIONING", "CONDITIONING"]),
    "InstantIDApplyPeople": (
        "Apply InstantID (People)",
        ["MODEL", "CONDITIONING", "CONDITIONING", "IMAGE", "MASK"],
    ),
    "InstantIDFaceSimilarity": ("InstantID Face Similarity", ["IMAGE", "IMAGE", "IMAGE", "FLOAT", "STRING"]),
    "InstantIDSaveFace": ("InstantID Save Face", ["STRING"]),
    "InstantIDLoadFace": ("InstantID Load Face", ["INSTANTID_FACE"]),
    "InstantIDFaceCrop": ("InstantID Face Crop", ["IMAGE", "IMAGE", "MASK", "INSTANTID_STITCH"]),
    "InstantIDFacePaste": ("InstantID Face Paste", ["IMAGE"]),
    "InstantIDDoctor": ("InstantID Doctor", ["STRING"]),
    "InstantIDDownloadModels": ("InstantID Download Models", ["STRING"]),
}


def test_object_info_lists_every_node_with_its_types_and_a_tooltip_on_every_input(comfy_server):
    info = comfy_server.get_json("/object_info")

    for node_id, (display_name, outputs) in NODES.items():
        node = info[node_id]
        assert (node["display_name"], node["output"], node["category"]) == (display_name, outputs, "InstantID")
        inputs = {**node["input"]["required"], **node["input"].get("optional", {})}
        untipped = [name for name, spec in inputs.items() if not (len(spec) > 1 and spec[1].get("tooltip"))]
        assert untipped == [], f"{node_id}: inputs without a tooltip: {untipped}"
    assert "ip-adapter.bin" in info["InstantIDLoadAdapter"]["input"]["required"]["adapter_file"][1]["options"]
    assert "antelopev2" in info["InstantIDLoadFaceAnalysis"]["input"]["required"]["face_pack"][1]["options"]


def test_a_photo_without_a_face_comes_back_as_a_comfyui_error_naming_the_image(comfy_server):
    from scripts.harness.comfy_server import PromptError

    prompt = analysis_prompt(FACE_A)
    prompt["photo"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": 256, "height": 256, "batch_size": 1, "color": 0x808080},
    }

    with pytest.raises(PromptError) as raised:
        comfy_server.run(prompt)

    (error,) = [m[1] for m in raised.value.body["status"]["messages"] if m[0] == "execution_error"]
    assert error["node_type"] == "InstantIDAnalyzeFaces" and error["exception_type"] == "instantid.no_face"
    assert "Reference image 0" in error["exception_message"]
    assert "is a single flat colour" in error["exception_message"]  # EmptyImage gives one flat grey


def test_the_example_workflows_are_offered_in_comfyuis_template_browser(comfy_server):
    from scripts.harness.paths import PACK_LINK_NAME, REPO

    templates = comfy_server.get_json("/workflow_templates")

    assert sorted(templates[PACK_LINK_NAME]) == sorted(p.stem for p in (REPO / "workflows").glob("*.json"))


def test_the_batch_clients_prompt_names_only_nodes_and_inputs_the_server_has_and_gets_each_job_filled_in(comfy_server):
    import json

    from scripts import batch_client
    from scripts.harness.paths import REPO

    template = json.loads((REPO / "scripts" / "batch_client_prompt.json").read_text())
    info = comfy_server.get_json("/object_info")

    for node_id, node in template.items():
        spec = info[node["class_type"]]["input"]
        assert set(node["inputs"]) <= {*spec["required"], *spec.get("optional", {})}, node_id
        assert set(spec["required"]) <= set(node["inputs"]), node_id
    job = {"name": "x", "face": "instantid-face:AAAA", "text": "a watercolor portrait", "seed": 5}
    prompt = batch_client.job_prompt(template, job, batch_client.positive_text_node(template))
    assert prompt["4"]["inputs"] == {"face_value": "instantid-face:AAAA"}
    assert (prompt["6"]["inputs"]["text"], prompt["11"]["inputs"]["seed"]) == ("a watercolor portrait", 5)
