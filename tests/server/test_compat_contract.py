"""The ComfyUI_InstantID contract: the seven node ids that workflows saved with cubiq's pack use publish, through a
real server's /object_info, exactly that pack's inputs (names, types, defaults, ranges, options, order) and outputs.

Saved workflows store widget values by position, so the order and the defaults are the contract. The expectations
below are written from that pack's published node definitions (its INPUT_TYPES, RETURN_TYPES and RETURN_NAMES in
InstantID.py), not from this pack's code. Where this pack offers more, it is listed in EXTRAS and may only follow
what the pack has (an optional input after the last one, a choice after the last one), which keeps every saved value
in its place.
"""

import pytest

pytestmark = pytest.mark.server

PERCENTS = [
    ("start_at", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
    ("end_at", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}),
]
APPLY_GRAPH = [
    ("instantid", "INSTANTID", {}),
    ("insightface", "FACEANALYSIS", {}),
    ("control_net", "CONTROL_NET", {}),
    ("image", "IMAGE", {}),
    ("model", "MODEL", {}),
    ("positive", "CONDITIONING", {}),
    ("negative", "CONDITIONING", {}),
]
APPLY_OPTIONAL = [("image_kps", "IMAGE", {}), ("mask", "MASK", {})]
APPLY_OUTPUTS = (["MODEL", "CONDITIONING", "CONDITIONING"], ["MODEL", "positive", "negative"])

# node id -> (required inputs, optional inputs, (output types, output names)); an input is (name, type, options),
# a list type is a combo with those choices
CONTRACT = {
    "InstantIDModelLoader": ([("instantid_file", "FILES", {})], [], (["INSTANTID"], ["INSTANTID"])),
    "InstantIDFaceAnalysis": ([("provider", ["CPU", "CUDA", "ROCM"], {})], [], (["FACEANALYSIS"], ["FACEANALYSIS"])),
    "FaceKeypointsPreprocessor": (
        [("faceanalysis", "FACEANALYSIS", {}), ("image", "IMAGE", {})],
        [],
        (["IMAGE"], ["IMAGE"]),
    ),
    "ApplyInstantID": (
        [*APPLY_GRAPH, ("weight", "FLOAT", {"default": 0.8, "min": 0.0, "max": 5.0, "step": 0.01}), *PERCENTS],
        APPLY_OPTIONAL,
        APPLY_OUTPUTS,
    ),
    "ApplyInstantIDAdvanced": (
        [
            *APPLY_GRAPH,
            ("ip_weight", "FLOAT", {"default": 0.8, "min": 0.0, "max": 3.0, "step": 0.01}),
            ("cn_strength", "FLOAT", {"default": 0.8, "min": 0.0, "max": 10.0, "step": 0.01}),
            *PERCENTS,
            ("noise", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.1}),
            ("combine_embeds", ["average", "norm average", "concat"], {"default": "average"}),
        ],
        APPLY_OPTIONAL,
        APPLY_OUTPUTS,
    ),
    "InstantIDAttentionPatch": (
        [
            ("instantid", "INSTANTID", {}),
            ("insightface", "FACEANALYSIS", {}),
            ("image", "IMAGE", {}),
            ("model", "MODEL", {}),
            ("weight", "FLOAT", {"default": 1.0, "min": -1.0, "max": 3.0, "step": 0.01}),
            *PERCENTS,
            ("noise", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.1}),
        ],
        [("mask", "MASK", {})],
        (["MODEL", "FACE_EMBEDS"], ["MODEL", "FACE_EMBEDS"]),
    ),
    "ApplyInstantIDControlNet": (
        [
            ("face_embeds", "FACE_EMBEDS", {}),
            ("control_net", "CONTROL_NET", {}),
            ("image_kps", "IMAGE", {}),
            ("positive", "CONDITIONING", {}),
            ("negative", "CONDITIONING", {}),
            ("strength", "FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            *PERCENTS,
        ],
        [("mask", "MASK", {})],
        (["CONDITIONING", "CONDITIONING"], ["positive", "negative"]),
    ),
}
EXTRAS = {
    # CoreML, which later releases of that pack (and its author's PuLID pack) list after ROCM
    ("InstantIDFaceAnalysis", "provider"): ["CoreML"],
    # this pack's per-block weight profiles, an optional input after the last one
    ("InstantIDAttentionPatch", "weight_type"): "optional input",
}


@pytest.fixture(scope="module")
def object_info(comfy_server):
    """What the server publishes for every node."""
    return comfy_server.get_json("/object_info")


def published(info: dict, group: str) -> list[tuple[str, object, dict]]:
    """The inputs of one group ('required' or 'optional') in the published order, as (name, type, options)."""
    specs = info["input"].get(group, {})
    out = []
    for name in info["input_order"].get(group, []):
        kind, *rest = specs[name]
        options = dict(rest[0]) if rest else {}
        if kind == "COMBO":  # the V3 form of a combo: its choices travel in the options
            kind = options.pop("options")
        out.append((name, kind, options))
    return out


@pytest.mark.parametrize("node_id", sorted(CONTRACT))
def test_each_comfyui_instantid_node_publishes_that_packs_inputs_in_its_order(object_info, node_id):
    required, optional, _ = CONTRACT[node_id]
    info = object_info[node_id]

    for group, expected in (("required", required), ("optional", optional)):
        got = published(info, group)
        extra = [entry for entry in got[len(expected) :] if (node_id, entry[0]) in EXTRAS]
        assert [name for name, _, _ in got] == [name for name, _, _ in expected] + [name for name, _, _ in extra], group
        for (name, kind, options), (_, want_kind, want_options) in zip(got, expected, strict=False):
            if want_kind == "FILES":  # the adapter files ComfyUI lists: a combo whatever the folder holds
                assert isinstance(kind, list), name
                continue
            if isinstance(want_kind, list):
                assert kind == want_kind + EXTRAS.get((node_id, name), []), name
            else:
                assert kind == want_kind, name
            assert {key: options.get(key) for key in want_options} == want_options, name


@pytest.mark.parametrize("node_id", sorted(CONTRACT))
def test_each_comfyui_instantid_node_publishes_that_packs_outputs(object_info, node_id):
    _, _, (types, names) = CONTRACT[node_id]

    assert object_info[node_id]["output"] == types
    assert object_info[node_id]["output_name"] == names


def test_the_extras_are_optional_and_come_after_everything_the_pack_has(object_info):
    info = object_info["InstantIDAttentionPatch"]

    assert published(info, "optional")[-1][0] == "weight_type"
    assert "weight_type" not in info["input"]["required"]
