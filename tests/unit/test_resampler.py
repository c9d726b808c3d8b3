"""The perceiver Resampler: same numbers as an independent reference, dimensions read from the tensors, float32 math."""

import pytest
import torch
import torch.nn.functional as F
from adapter_fixtures import REAL_DIMS, TinyDims, resampler_shapes, resampler_state_dict

from instantid_core.errors import InstantIDError
from instantid_core.resampler import Resampler, ResamplerConfig

pytestmark = pytest.mark.unit

# inner width (heads × 64 = 128) differs from the hidden width (96), and every other width differs too
DIMS = TinyDims(dim=96, depth=2, heads=2, num_queries=3, embedding_dim=24, output_dim=40, ff_mult=4)


def reference_resampler(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: int) -> torch.Tensor:
    """IP-Adapter's Resampler written out functionally: (B, N, embedding) -> (B, queries, output), in float32."""

    def layer_norm(t, prefix):
        return F.layer_norm(t, t.shape[-1:], sd[f"{prefix}.weight"], sd[f"{prefix}.bias"])

    def split_heads(t):
        b, n, width = t.shape
        return t.reshape(b, n, heads, width // heads).transpose(1, 2)

    depth = len({key.split(".")[1] for key in sd if key.startswith("layers.")})
    latents = sd["latents"].repeat(x.shape[0], 1, 1)
    x = F.linear(x, sd["proj_in.weight"], sd["proj_in.bias"])
    for i in range(depth):
        p = f"layers.{i}"
        x_n, lat_n = layer_norm(x, f"{p}.0.norm1"), layer_norm(latents, f"{p}.0.norm2")
        q = split_heads(F.linear(lat_n, sd[f"{p}.0.to_q.weight"]))
        k, v = (split_heads(t) for t in F.linear(torch.cat([x_n, lat_n], 1), sd[f"{p}.0.to_kv.weight"]).chunk(2, -1))
        scale = q.shape[-1] ** -0.25
        attn = torch.softmax((q * scale) @ (k * scale).transpose(-2, -1), dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(latents.shape[0], latents.shape[1], -1)
        latents = F.linear(attn, sd[f"{p}.0.to_out.weight"]) + latents
        hidden = F.gelu(F.linear(layer_norm(latents, f"{p}.1.0"), sd[f"{p}.1.1.weight"]))
        latents = F.linear(hidden, sd[f"{p}.1.3.weight"]) + latents
    return layer_norm(F.linear(latents, sd["proj_out.weight"], sd["proj_out.bias"]), "norm_out")


def face_embeddings(batch: int, width: int, norm: float = 30.0, seed: int = 3) -> torch.Tensor:
    """Raw face embeddings with the L2 norm real antelopev2 embeddings have (~20-30)."""
    e = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed))
    return e / e.norm(dim=-1, keepdim=True) * norm


def config_of(dims: TinyDims) -> ResamplerConfig:
    return ResamplerConfig(
        dim=dims.dim,
        depth=dims.depth,
        heads=dims.heads,
        num_queries=dims.num_queries,
        embedding_dim=dims.embedding_dim,
        output_dim=dims.output_dim,
        ff_mult=dims.ff_mult,
    )


@pytest.mark.parametrize(
    "input_shape",
    [(2, DIMS.embedding_dim), (2, 3, DIMS.embedding_dim)],
    ids=["one embedding per row", "several embeddings per row"],
)
def test_resampler_output_equals_the_independent_reference(input_shape):
    sd = resampler_state_dict(DIMS, seed=5)
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0)) * 5
    expected = reference_resampler(sd, x if x.ndim == 3 else x.unsqueeze(1), DIMS.heads)

    out = Resampler.from_state_dict(sd).tokens(x, torch.float32)

    assert out.shape == (2, DIMS.num_queries, DIMS.output_dim)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "dims",
    [DIMS, TinyDims(), TinyDims(dim=64, depth=1, heads=3, num_queries=7, embedding_dim=10, output_dim=20, ff_mult=2)],
)
def test_every_dimension_is_read_from_the_state_dict(dims):
    module = Resampler.from_state_dict(resampler_state_dict(dims))

    assert module.config == config_of(dims)
    assert module.tokens(torch.zeros(1, dims.embedding_dim), torch.float32).shape == (
        1,
        dims.num_queries,
        dims.output_dim,
    )


def test_the_published_files_dimensions_are_inferred_from_its_shapes():
    config = ResamplerConfig.from_shapes(resampler_shapes(REAL_DIMS))

    assert config == config_of(REAL_DIMS)
    assert (config.heads, config.inner_dim, config.ff_dim) == (20, 1280, 5120)


def test_from_state_dict_builds_float32_weights_from_half_precision_tensors():
    sd = {key: t.half() for key, t in resampler_state_dict(DIMS).items()}

    module = Resampler.from_state_dict(sd)

    assert {t.dtype for t in module.state_dict().values()} == {torch.float32}
    assert torch.equal(module.layers[1][0].to_kv.weight, sd["layers.1.0.to_kv.weight"].float())


@pytest.mark.parametrize("module_dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("under_autocast", [False, True], ids=["plain", "under bf16 autocast"])
def test_tokens_are_computed_in_float32_even_from_a_half_module_and_half_inputs(
    module_dtype, out_dtype, under_autocast
):
    sd = resampler_state_dict(DIMS)
    module = Resampler.from_state_dict(sd).to(module_dtype)
    rounded = {key: t.to(module_dtype).float() for key, t in sd.items()}  # the weights the half module really holds
    embeds = face_embeddings(2, DIMS.embedding_dim).half()
    expected = reference_resampler(rounded, embeds.float().unsqueeze(1), DIMS.heads)

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=under_autocast):
        out = module.tokens(embeds, out_dtype)

    assert out.dtype == out_dtype
    assert torch.isfinite(out).all()
    torch.testing.assert_close(
        out.float(), expected.to(out_dtype).float(), atol=1e-5 if out_dtype == torch.float32 else 1e-2, rtol=0
    )
    assert module.latents.dtype == module_dtype  # computing tokens does not recast the module


@pytest.mark.parametrize("shape", [(1, DIMS.embedding_dim + 1), (1, 2, 3, DIMS.embedding_dim)])
def test_embeddings_of_the_wrong_width_are_refused_with_the_expected_width(shape):
    module = Resampler.from_state_dict(resampler_state_dict(DIMS))

    with pytest.raises(InstantIDError, match=rf"expects \(batch, {DIMS.embedding_dim}\)"):
        module.tokens(torch.zeros(shape), torch.float32)


def without(sd: dict, *prefixes: str) -> dict:
    return {key: t for key, t in sd.items() if not key.startswith(prefixes)}


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda s: without(s, "layers.1.1.3.weight"), "layers.1.1.3.weight is missing"),
        (lambda s: {**s, "layers.0.0.to_v.weight": (128, 96)}, "layers.0.0.to_v.weight is unexpected"),
        (
            lambda s: {**s, "layers.1.0.to_out.weight": (96, 64)},
            "layers.1.0.to_out.weight has shape (96, 64), expected (96, 128)",
        ),
        (lambda s: {**s, "proj_out.bias": (41,)}, "proj_out.bias has shape (41), expected (40)"),
    ],
    ids=["missing", "unexpected", "wrong shape", "wrong bias width"],
)
def test_mismatches_names_each_problem_key(edit, problem):
    shapes = edit(resampler_shapes(DIMS))

    problems = ResamplerConfig.from_shapes(shapes).mismatches(shapes, prefix="image_proj.")

    assert problems == ["image_proj." + problem]


def test_a_complete_state_dict_has_no_mismatches():
    shapes = resampler_shapes(DIMS)

    assert ResamplerConfig.from_shapes(shapes).mismatches(shapes) == []


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: without(s, "latents"), "latents is missing"),
        (lambda s: {**s, "layers.0.0.to_q.weight": (100, 96)}, "100 rows, not a multiple of the 64-wide heads"),
        (lambda s: {**s, "proj_in.weight": (96,)}, "proj_in.weight has shape (96), expected a 2-d shape"),
        (lambda s: without(s, "layers.1."), r"layers are numbered [0, 2], expected 0..1"),
    ],
    ids=["no latents", "partial head", "wrong rank", "gap in layers"],
)
def test_dimensions_that_cannot_be_read_raise_a_clear_error(edit, message):
    shapes = edit(resampler_shapes(TinyDims(dim=96, depth=3, heads=2, embedding_dim=24, output_dim=40)))

    with pytest.raises(InstantIDError) as raised:
        ResamplerConfig.from_shapes(shapes)

    assert message in str(raised.value)


def test_from_state_dict_refuses_tensors_that_do_not_fit_and_names_them():
    sd = resampler_state_dict(DIMS)
    sd["layers.0.1.1.weight"] = torch.zeros(384, 95)

    with pytest.raises(InstantIDError, match=r"do not fit together: layers\.0\.1\.1\.weight has shape \(384, 95\)"):
        Resampler.from_state_dict(sd)
