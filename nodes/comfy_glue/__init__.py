"""The pack's ComfyUI glue: every place outside the node classes that touches ComfyUI, one module per job.

- `folders`: the model folders and file lists (models/instantid, models/insightface, saved faces);
- `model_setup`: InstantID Doctor's and Download Models' ComfyUI side;
- `attn2_protocol`: ComfyUI's attn2 patch protocol (the replace patch, the guard, the contributions other packs add,
  everything that reads a layer call's `extra_options`);
- `unet_patching`: the identity attention put on a model (its layers found, the K/V under the model manager);
- `controlnet`: IdentityNet as a ComfyUI ControlNet.

The ComfyUI internals the pack relies on (beyond the V3 node API), each checked by tests/host/test_comfy_internals.py
on every host the suite runs against:
- folders: `folder_paths.folder_names_and_paths[name]` is a (paths, extensions) pair; `add_model_folder_path`,
  `get_filename_list`, `get_full_path`, `get_folder_paths`, `models_dir`, `supported_pt_extensions`;
- the UNet: `diffusion_model.input_blocks` / `middle_block` / `output_blocks`, whose `SpatialTransformer`s hold
  `transformer_blocks[i].attn2` with `to_q`, `to_k`, `to_out[0]` and `heads`; the block key of a layer is
  `(block name, block number, transformer index)`, the middle block's number is 0;
- attention patches: `ModelPatcher.set_model_attn2_replace(patch, *key)` (a replace patch is called as
  `patch(q, k, v, extra_options)`), `set_model_attn2_patch` and `set_model_attn2_output_patch`, kept in
  `model_options["transformer_options"]["patches_replace"]["attn2"]` and `["patches"]`; a replace patch's `models()`
  are loaded with the UNet and its `to()` is called on moves (possibly with the UNet's storage dtype);
- extra_options of a layer call: `n_heads`, `cond_or_uncond`, `sigmas`, `activations_shape`, `original_shape`,
  `block`, `block_index`, `attn_precision`; `optimized_attention(q, k, v, heads, attn_precision=...,
  transformer_options=...)`, which newer ComfyUI also gives a layer's own kernel (`attn2.comfy_attention`, where
  present) as `preferred_attention=`; `attention_pytorch` (the same arguments, and `skip_reshape` /
  `skip_output_reshape` for [B, heads, tokens, dim] in and out), ComfyUI's SDPA attention; `get_attn_precision
  (attn_precision, dtype)`, its precision rule; an `optimized_attention_override` in the options, through which
  ComfyUI's kernels hand every attention to another pack;
- context windows: where ComfyUI runs a batch in windows (`comfy.context_windows`, *Context Windows (Manual)*), a
  model call's options hold the window as `context_window`, whose `dim` 0 means the batch dimension and whose
  `get_tensor(batch, dim=0)` picks the call's pictures from the batch (its `index_list`, with an anchor picture first
  on newer ComfyUI);
- one dict per block call: the attn2 patches, the attn2 replace patch and the attn2 output patches of one transformer
  block call receive the same `extra_options` dict, so what one writes into it the next reads (the guard's contract);
- cloning: `ModelPatcher.clone()` copies `model_options` (0.3.x deep-copies patch objects, 0.33+ shares them) and
  calls the `CallbacksMP.ON_CLONE` callbacks registered with `add_callback_with_key`;
- the model manager: `comfy.model_patcher.CoreModelPatcher` (where present) is the patcher class the host uses,
  `model_management.get_torch_device` / `unet_offload_device`, `model.model.manual_cast_dtype` and `get_dtype()`,
  `model_sampling.percent_to_sigma`;
- ControlNets: `comfy.controlnet.ControlNet` with `control_model` (a cldm ControlNet with `input_blocks`,
  `middle_block`, `label_emb`), `copy()` (our subclass takes over by a `__class__` swap), `set_cond_hint(hint,
  strength, (start, end), vae=...)`, `set_previous_controlnet`, `previous_controlnet`, `get_control(x_noisy, t, cond,
  batched_number, transformer_options)` reading the context from `cond["crossattn_controlnet"]`, preparing its hint
  from `cond_hint_original` (into `cond_hint`; newer ComfyUI keeps up to two prepared hints per latent size in
  `cond_hints`) and returning `{"input"|"middle"|"output": [residual or None]}`; the conditioning keys `control` and
  `control_apply_to_uncond`.
"""
