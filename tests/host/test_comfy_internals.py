"""The ComfyUI internals listed in nodes/comfy_glue/__init__.py, each checked on the host the suite runs against, so a
ComfyUI release that changes one fails here with a message naming it rather than somewhere deep in a sampling run."""

import inspect

import pytest
import torch

from helpers.host_runs import denoise
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host

MIN_COMFYUI = (0, 3, 75)


def relied_on(condition, internal: str) -> None:
    """Fail with the internal's name and where the pack relies on it."""
    assert condition, f"ComfyUI changed an internal the pack relies on (see nodes/comfy_glue/__init__.py): {internal}"


def parameters(function) -> list[str]:
    """The parameter names of a function, `self` left out."""
    return [name for name in inspect.signature(function).parameters if name != "self"]


@pytest.fixture(scope="module")
def base(comfy_host):
    """A tiny SDXL-topology model, built by the in-process host's ComfyUI."""
    return tiny_sdxl(seed=0)


def test_the_host_is_a_real_comfyui_at_least_the_minimum_version(comfy_host):
    version = tuple(int(part) for part in comfy_host.version.split(".")[:3])
    relied_on(version >= MIN_COMFYUI, f"ComfyUI {comfy_host.version} is older than the minimum {MIN_COMFYUI}")
    relied_on((comfy_host.root / "comfy" / "model_patcher.py").is_file(), "comfy/model_patcher.py")


def test_model_folders_are_path_and_extension_pairs(comfy_host):
    import folder_paths

    for name in ("add_model_folder_path", "get_filename_list", "get_full_path", "get_folder_paths"):
        relied_on(callable(getattr(folder_paths, name, None)), f"folder_paths.{name}")
    relied_on(isinstance(folder_paths.models_dir, str), "folder_paths.models_dir")
    relied_on(
        {".bin", ".safetensors"} <= set(folder_paths.supported_pt_extensions), "folder_paths.supported_pt_extensions"
    )
    paths, extensions = folder_paths.folder_names_and_paths["instantid"]
    relied_on(isinstance(paths, list) and isinstance(extensions, set), "folder_names_and_paths[name] = (paths, exts)")


def test_the_unets_cross_attention_modules_sit_where_the_pack_looks(pack, base):
    from comfy.ldm.modules.attention import SpatialTransformer

    unet = base.get_model_object("diffusion_model")
    for name in ("input_blocks", "middle_block", "output_blocks"):
        relied_on(hasattr(unet, name), f"diffusion_model.{name}")
    transformers = [m for m in unet.modules() if isinstance(m, SpatialTransformer)]
    relied_on(
        transformers and all(hasattr(t, "transformer_blocks") for t in transformers),
        "SpatialTransformer.transformer_blocks",
    )
    modules = pack.unet_patching.attn2_modules(base)
    relied_on(len(modules) == 70, f"70 attn2 modules in SDXL's blocks, found {len(modules)}")
    relied_on(("middle", 0, 9) in modules, "the middle block's key is ('middle', 0, i)")
    attn2 = modules[("input", 4, 0)]
    for name in ("to_q", "to_k", "to_out", "heads"):
        relied_on(hasattr(attn2, name), f"CrossAttention.{name}")


def test_an_attn2_replace_patch_is_called_with_the_options_the_pack_reads(pack, base):
    from comfy.ldm.modules.attention import optimized_attention

    seen = []

    def probe(q, k, v, extra_options):
        seen.append((dict(extra_options), q.shape, k.shape))
        return optimized_attention(
            q, k, v, extra_options["n_heads"], attn_precision=extra_options["attn_precision"], transformer_options={}
        )

    patched = base.clone()
    patched.set_model_attn2_replace(probe, "middle", 0, 0)
    denoise(patched)

    relied_on(len(seen) == 1, "set_model_attn2_replace(patch, block, number, index) calls patch(q, k, v, options)")
    options, q_shape, k_shape = seen[0]
    for key in (
        "n_heads",
        "cond_or_uncond",
        "sigmas",
        "activations_shape",
        "original_shape",
        "block",
        "block_index",
        "attn_precision",
    ):
        relied_on(key in options, f"extra_options['{key}'] in attn2 patches")
    relied_on((*options["block"], options["block_index"]) == ("middle", 0, 0), "extra_options block/block_index")
    relied_on(sorted(options["cond_or_uncond"]) == [0, 1], "cond_or_uncond lists the batch halves")
    relied_on(isinstance(options["sigmas"], torch.Tensor), "extra_options['sigmas'] is a tensor")
    relied_on(q_shape[-1] == k_shape[-1], "q, k and v reach the patch projected, [batch, tokens, heads*dim]")
    import comfy.ldm.modules.attention as attention

    for name in ("optimized_attention", "attention_pytorch"):
        accepted = inspect.signature(getattr(attention, name)).parameters
        relied_on(
            "attn_precision" in accepted and any(p.kind is p.VAR_KEYWORD for p in accepted.values()),
            f"{name}(q, k, v, heads, attn_precision=..., **kwargs)",
        )
    accepted = inspect.signature(attention.attention_pytorch).parameters
    relied_on(
        {"skip_reshape", "skip_output_reshape"} <= set(accepted),
        "attention_pytorch(..., skip_reshape=, skip_output_reshape=) takes and gives [B, heads, tokens, dim]",
    )
    relied_on(
        attention.get_attn_precision(torch.float32, torch.bfloat16) in (torch.float32, None),
        "get_attn_precision(attn_precision, dtype), ComfyUI's attention precision rule",
    )
    import comfy.context_windows as context_windows

    takes_total = "total_frames" in inspect.signature(context_windows.IndexListContextWindow).parameters
    window = context_windows.IndexListContextWindow([2, 3], dim=0, **({"total_frames": 6} if takes_total else {}))
    relied_on(
        window.dim == 0 and window.get_tensor(torch.arange(6), dim=0).tolist() == [2, 3],
        "IndexListContextWindow(index_list, dim).get_tensor(batch, dim=0) picks a window's pictures",
    )


def test_patches_are_kept_where_the_pack_reads_them_and_their_models_load_with_the_unet(base):
    class Patch:
        def __init__(self):
            self.moved = []

        def __call__(self, q, k, v, extra_options):
            raise AssertionError("not called in this test")

        def models(self):
            return ["kv patcher"]

        def to(self, device_or_dtype):
            self.moved.append(device_or_dtype)
            return self

    patch = Patch()
    patched = base.clone()
    patched.set_model_attn2_replace(patch, "input", 4, 0)
    patched.set_model_attn2_patch(lambda n, c, v, o: (n, c, v))
    patched.set_model_attn2_output_patch(lambda out, o: out)
    options = patched.model_options["transformer_options"]

    relied_on(
        options["patches_replace"]["attn2"][("input", 4, 0)] is patch,
        "model_options['transformer_options']['patches_replace']['attn2'][key]",
    )
    relied_on(
        len(options["patches"]["attn2_patch"]) == 1 and len(options["patches"]["attn2_output_patch"]) == 1,
        "model_options['transformer_options']['patches'] lists attn2_patch / attn2_output_patch",
    )
    relied_on("kv patcher" in patched.model_patches_models(), "ModelPatcher.model_patches_models() asks models()")
    patched.model_patches_to(torch.float16)
    relied_on(patch.moved == [torch.float16], "ModelPatcher.model_patches_to() calls the patch's to()")


def test_one_extra_options_dict_is_shared_by_the_attn2_patch_replace_patch_and_output_patch_of_a_block_call(base):
    """The guard's contract: what the attn2 patch and the replace patch write into extra_options, the output patch of
    the same block call reads (our guard keeps the layer's input and reads the replace patch's flag that way)."""
    from comfy.ldm.modules.attention import optimized_attention

    seen = []

    def before(n, context, value, extra_options):
        extra_options["probe"] = ["attn2 patch"]
        return n, context, value

    def replace(q, k, v, extra_options):
        extra_options["probe"].append("replace patch")
        return optimized_attention(q, k, v, extra_options["n_heads"], transformer_options={})

    def after(out, extra_options):
        seen.append((extra_options["block"], extra_options["block_index"], list(extra_options.get("probe", []))))
        extra_options.pop("probe", None)  # the next block call starts without it
        return out

    patched = base.clone()
    patched.set_model_attn2_patch(before)
    patched.set_model_attn2_replace(replace, "middle", 0, 0)
    patched.set_model_attn2_output_patch(after)
    denoise(patched)

    at_replaced = [probe for block, index, probe in seen if (*block, index) == ("middle", 0, 0)]
    relied_on(len(seen) == 70, f"attn2 output patches run once per layer call ({len(seen)} of 70)")
    relied_on(
        at_replaced == [["attn2 patch", "replace patch"]]
        and all(probe == ["attn2 patch"] for block, index, probe in seen if (*block, index) != ("middle", 0, 0)),
        "one extra_options dict per block call, shared by its attn2 patch, attn2 replace patch and attn2 output patch",
    )


def test_cloning_copies_model_options_and_runs_on_clone_callbacks(base):
    from comfy.patcher_extension import CallbacksMP

    seen = []
    original = base.clone()
    original.add_callback_with_key(CallbacksMP.ON_CLONE, "probe", lambda parent, clone: seen.append((parent, clone)))
    clone = original.clone()

    relied_on(seen == [(original, clone)], "clone() calls CallbacksMP.ON_CLONE callbacks as callback(parent, clone)")
    relied_on(
        clone.model_options is not original.model_options
        and clone.model_options["transformer_options"] is not original.model_options["transformer_options"],
        "clone() copies model_options and transformer_options",
    )


def test_the_model_manager_pieces_the_pack_uses(pack, base):
    import comfy.model_management as mm
    import comfy.model_patcher

    for name in ("get_torch_device", "unet_offload_device"):
        relied_on(callable(getattr(mm, name, None)), f"model_management.{name}")
    patcher_class = pack.unet_patching.kv_patcher_class()
    relied_on(issubclass(patcher_class, comfy.model_patcher.ModelPatcher), "CoreModelPatcher is a ModelPatcher")
    relied_on(
        hasattr(base.model, "manual_cast_dtype") and callable(base.model.get_dtype),
        "model.model.manual_cast_dtype / get_dtype()",
    )
    sampling = base.get_model_object("model_sampling")
    relied_on(
        float(sampling.percent_to_sigma(0.0)) > float(sampling.percent_to_sigma(1.0)), "model_sampling.percent_to_sigma"
    )


def test_the_kv_patcher_is_of_the_class_the_host_builds_its_models_with(pack, adapter, base, monkeypatch):
    import comfy.model_patcher

    host_class = getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
    tokens = adapter.tokens(torch.randn(1, 512).numpy())
    patched = pack.unet_patching.apply_identity_attention(base, adapter, tokens, 1.0, 0.0, 1.0)
    (kv_patcher,) = {type(m) for m in patched.model_patches_models()}
    relied_on(kv_patcher is host_class, f"K/V patcher {kv_patcher.__name__}, host class {host_class.__name__}")

    class Dynamic(comfy.model_patcher.ModelPatcher):
        """What newer hosts bind CoreModelPatcher to at start-up on NVIDIA GPUs."""

    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", Dynamic, raising=False)
    patched = pack.unet_patching.apply_identity_attention(base, adapter, tokens, 1.0, 0.0, 1.0)
    assert {type(m) for m in patched.model_patches_models()} == {Dynamic}


def test_a_controlnet_exposes_what_identitynet_builds_on(pack):
    import comfy.controlnet

    net = tiny_controlnet(seed=4)
    relied_on(
        isinstance(net, comfy.controlnet.ControlNet) and net.control_model is not None,
        "comfy.controlnet.ControlNet.control_model",
    )
    for name in ("input_blocks", "middle_block", "label_emb"):
        relied_on(hasattr(net.control_model, name), f"cldm ControlNet.{name}")
    relied_on(
        parameters(comfy.controlnet.ControlNet.get_control)
        == ["x_noisy", "t", "cond", "batched_number", "transformer_options"],
        "ControlNet.get_control signature",
    )
    relied_on(
        parameters(comfy.controlnet.ControlNet.set_cond_hint)[:4]
        == ["cond_hint", "strength", "timestep_percent_range", "vae"],
        "ControlNet.set_cond_hint signature",
    )
    relied_on(
        "crossattn_controlnet" in inspect.getsource(comfy.controlnet.ControlNet.get_control),
        "ControlNet.get_control reads cond['crossattn_controlnet']",
    )


def test_a_controlnets_previous_one_is_kept_loaded_and_run_by_its_get_control_until_unset(base, monkeypatch):
    import comfy.controlnet

    hint = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(7))
    previous = tiny_controlnet(seed=5).set_cond_hint(hint, 1.0, (0.0, 1.0))
    net = tiny_controlnet(seed=4).copy().set_cond_hint(hint, 1.0, (0.0, 1.0))
    net.set_previous_controlnet(previous)
    relied_on(
        net.previous_controlnet is previous, "set_previous_controlnet(c) keeps c as ControlNet.previous_controlnet"
    )
    relied_on(
        previous.control_model_wrapped in net.get_models(), "ControlNet.get_models() includes the previous ControlNet's"
    )
    calls = []
    original = comfy.controlnet.ControlNet.get_control

    def recording(self, x_noisy, t, cond, batched_number, transformer_options):
        calls.append((self, x_noisy, t, cond, batched_number, transformer_options))
        return original(self, x_noisy, t, cond, batched_number, transformer_options)

    monkeypatch.setattr(comfy.controlnet.ControlNet, "get_control", recording)
    positive = [[embedding, dict(options, control=net)] for embedding, options in sdxl_conditioning(10)]
    denoise(base, positive)

    relied_on(
        [call[0] for call in calls] == [net, previous],
        "ControlNet.get_control calls previous_controlnet.get_control (after pre_run prepared the whole chain)",
    )
    relied_on(
        all(a is b for a, b in zip(calls[0][1:], calls[1][1:], strict=True)),
        "previous_controlnet.get_control gets the same (x_noisy, t, cond, batched_number, transformer_options)",
    )
    calls.clear()
    net.set_previous_controlnet(None)
    denoise(base, positive)
    relied_on(
        [call[0] for call in calls] == [net], "ControlNet.get_control reads previous_controlnet when it is called"
    )


def test_identitynet_residuals_come_back_in_the_layout_the_pack_merges(pack, adapter, base):
    from helpers.host_runs import make_faces

    tokens = adapter.tokens(make_faces(pack, (1,)).embeddings())
    hint = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(7))
    positive, negative = pack.controlnet.apply_identitynet(
        sdxl_conditioning(10), sdxl_conditioning(11), tiny_controlnet(seed=4), tokens, hint, 1.0, 0.0, 1.0
    )
    options = positive[0][1]
    relied_on(
        "control" in options and options["control_apply_to_uncond"] is False,
        "conditioning keys 'control' and 'control_apply_to_uncond'",
    )
    seen = []
    original = type(options["control"]).get_control

    def recording(self, *args):
        out = original(self, *args)
        seen.append(out)
        return out

    type(options["control"]).get_control = recording
    try:
        denoise(base, positive, negative)
    finally:
        type(options["control"]).get_control = original
    relied_on(
        seen and set(seen[0]) <= {"input", "middle", "output"} and all(isinstance(v, list) for v in seen[0].values()),
        "get_control returns {'input'|'middle'|'output': [residual or None]}",
    )
