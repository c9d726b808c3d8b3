"""The pipelines the server tier runs, in API format: the all-in-one InstantID pipeline, the same without InstantID,
and face analysis alone. Full-size stand-ins, one step at SIZE."""

SIZE = 128
FACE_A, FACE_B = "instantid_face.png", "instantid_pose.png"
"""Stand-in photos of two different identities."""


def good_prompt(photo: str = FACE_A, seed: int = 1, steps: int = 1, **apply) -> dict:
    """The all-in-one pipeline in API format: checkpoint, adapter, face models, IdentityNet, Apply InstantID,
    one KSampler step at SIZE, decode, save. `apply` overrides Apply InstantID's inputs."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "adapter": {"class_type": "InstantIDLoadAdapter", "inputs": {"adapter_file": "ip-adapter.bin"}},
        "faces": {
            "class_type": "InstantIDLoadFaceAnalysis",
            "inputs": {"face_pack": "antelopev2", "provider": "CPU", "detection_size": 640},
        },
        "cn": {
            "class_type": "ControlNetLoader",
            "inputs": {"control_net_name": "instantid/diffusion_pytorch_model.safetensors"},
        },
        "photo": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait photo", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
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
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "reliability"}},
    }


def plain_prompt(photo: str = FACE_A) -> dict:
    """The good prompt without InstantID: the checkpoint's model and the text conditioning straight into KSampler."""
    prompt = good_prompt(photo)
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
