"""The pipelines the server tiers run, in API format: the all-in-one InstantID pipeline, the same without InstantID,
and face analysis alone. One step at SIZE, on the full-size stand-ins (FULL_SIZE, the e2e lane) or on the tiny
SDXL-topology models of the test node pack tests/comfy_test_pack (TINY, the server lane)."""

SIZE = 128
FACE_A, FACE_B = "instantid_face.png", "instantid_pose.png"
"""Stand-in photos of two different identities."""
TINY_ADAPTER = "tiny-ip-adapter.bin"
"""The adapter file of the tiny models (tests/helpers/tiny_models.py), written into the server's models/instantid."""

FULL_SIZE = {
    "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "cn": {
        "class_type": "ControlNetLoader",
        "inputs": {"control_net_name": "instantid/diffusion_pytorch_model.safetensors"},
    },
    "adapter": {"class_type": "InstantIDLoadAdapter", "inputs": {"adapter_file": "ip-adapter.bin"}},
    "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait photo", "clip": ["ckpt", 1]}},
    "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
    "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]}},
}
"""The full-size stand-ins through ComfyUI's own loaders, text encoder and VAE."""
TINY = {
    "ckpt": {"class_type": "InstantIDTestTinyModel", "inputs": {"seed": 0}},
    "cn": {"class_type": "InstantIDTestTinyControlNet", "inputs": {"kind": "identitynet", "seed": 1}},
    "adapter": {"class_type": "InstantIDLoadAdapter", "inputs": {"adapter_file": TINY_ADAPTER}},
    "pos": {"class_type": "InstantIDTestText", "inputs": {"text": "a portrait photo"}},
    "neg": {"class_type": "InstantIDTestText", "inputs": {"text": "blurry"}},
    "decode": {"class_type": "InstantIDTestDecode", "inputs": {"samples": ["sampler", 0]}},
}
"""The tiny models of the test node pack: a MODEL, a CONTROL_NET, a text encoder and a latent-to-picture decoder."""


def good_prompt(photo: str = FACE_A, seed: int = 1, steps: int = 1, models: dict = FULL_SIZE, **apply) -> dict:
    """The all-in-one pipeline in API format: model, adapter, face models, IdentityNet, Apply InstantID, one KSampler
    step at SIZE, decode, save. `models` picks the full-size or the tiny models; `apply` overrides Apply InstantID's
    inputs."""
    prompt = {key: {"class_type": node["class_type"], "inputs": dict(node["inputs"])} for key, node in models.items()}
    return prompt | {
        "faces": {
            "class_type": "InstantIDLoadFaceAnalysis",
            "inputs": {"face_pack": "antelopev2", "provider": "CPU", "detection_size": 640},
        },
        "photo": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "apply": {
            "class_type": "InstantIDApply",
            "inputs": {
                "instantid": ["adapter", 0],
                "face_analysis": ["faces", 0],
                "control_net": ["cn", 0],
                "image": ["photo", 0],
                "model": ["ckpt", 0],
                "positive": ["pos", 0],
                "negative": ["neg", 0],
                "weight": 0.8,
                "start_percent": 0.0,
                "end_percent": 1.0,
                "no_face": "error",
                **apply,
            },
        },
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "sampler": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["apply", 0],
                "positive": ["apply", 1],
                "negative": ["apply", 2],
                "latent_image": ["latent", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "reliability"}},
    }


def plain_prompt(photo: str = FACE_A, models: dict = FULL_SIZE) -> dict:
    """The good prompt without InstantID: the model and the text conditioning straight into KSampler."""
    prompt = good_prompt(photo, models=models)
    del prompt["apply"]
    prompt["sampler"]["inputs"] |= {"model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0]}
    return prompt


def analysis_prompt(
    photo: str, no_face: str = "error", batch_with: str | None = None, face_pack: str = "antelopev2"
) -> dict:
    """Face analysis alone: the face models, a photo (or a batch of two), InstantID Face Analysis, a preview."""
    faces = good_prompt()["faces"]
    faces["inputs"]["face_pack"] = face_pack
    prompt = {
        "faces": faces,
        "photo": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "analyze": {
            "class_type": "InstantIDAnalyzeFaces",
            "inputs": {
                "face_analysis": ["faces", 0],
                "image": ["photo", 0],
                "face_choice": "largest",
                "face_index": 0,
                "no_face": no_face,
            },
        },
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["analyze", 1]}},
    }
    if batch_with is not None:
        prompt["second"] = {"class_type": "LoadImage", "inputs": {"image": batch_with}}
        prompt["batch"] = {"class_type": "ImageBatch", "inputs": {"image1": ["photo", 0], "image2": ["second", 0]}}
        prompt["analyze"]["inputs"]["image"] = ["batch", 0]
    return prompt
