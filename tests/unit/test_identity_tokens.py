"""Identity tokens of one or several reference faces: each combination against the Resampler run directly, and the
noise of the unconditional tokens."""

import numpy as np
import pytest
import torch
from adapter_fixtures import TINY_LAYER_WIDTHS, TinyDims, instantid_nested, save_bin

from instantid_core.errors import InstantIDError
from instantid_core.faces import (
    COMBINE_METHODS,
    PER_PICTURE,
    DetectedFace,
    FaceAnalysisResult,
    InstantIDFaces,
    combine_embeddings,
)
from instantid_core.identity import NOISE_SEED, InstantIDAdapter

pytestmark = pytest.mark.unit

DIMS = TinyDims()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    path = save_bin(instantid_nested(DIMS, TINY_LAYER_WIDTHS), tmp_path_factory.mktemp("adapter") / "ip-adapter.bin")
    return InstantIDAdapter.load(path)


def embeddings(n: int, seed: int = 3) -> np.ndarray:
    """(n, embedding_dim) float32 raw face embeddings of norm ~30, as antelopev2's are."""
    rows = torch.randn(n, DIMS.embedding_dim, generator=torch.Generator().manual_seed(seed))
    return (rows / rows.norm(dim=-1, keepdim=True) * 30).numpy()


def resampled(adapter: InstantIDAdapter, x: torch.Tensor) -> torch.Tensor:
    """The adapter's Resampler run directly on (B, N, embedding_dim) inputs."""
    with torch.no_grad():
        return adapter.resampler(x)


def test_joint_tokens_are_the_resampler_of_all_faces_as_one_sample_and_of_zeros_of_that_shape(adapter):
    faces = embeddings(3)

    tokens = adapter.tokens(faces, "joint")

    assert tokens.cond.shape == tokens.uncond.shape == (1, DIMS.num_queries, DIMS.output_dim)
    assert torch.equal(tokens.cond, resampled(adapter, torch.from_numpy(faces).reshape(1, 3, -1)))
    assert torch.equal(tokens.uncond, resampled(adapter, torch.zeros(1, 3, DIMS.embedding_dim)))
    assert not torch.allclose(tokens.uncond, resampled(adapter, torch.zeros(1, 1, DIMS.embedding_dim)), atol=1e-3)


def test_joint_tokens_of_several_faces_differ_from_average_and_concat(adapter):
    faces = embeddings(3)

    joint = adapter.tokens(faces, "joint").cond
    average = adapter.tokens(faces, "average").cond
    concat = adapter.tokens(faces, "concat").cond

    assert joint.shape == average.shape and not torch.allclose(joint, average, atol=1e-3)
    assert concat.shape == (1, 3 * DIMS.num_queries, DIMS.output_dim)
    for face_tokens in concat.split(DIMS.num_queries, dim=1):
        assert not torch.allclose(joint, face_tokens, atol=1e-3)


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_joint_tokens_of_one_face_equal_average(adapter, noise):
    face = embeddings(1)

    joint, average = adapter.tokens(face, "joint", noise), adapter.tokens(face, "average", noise)

    assert torch.equal(joint.cond, average.cond) and torch.equal(joint.uncond, average.uncond)


@pytest.mark.parametrize("method", [m for m in COMBINE_METHODS if m != PER_PICTURE])
def test_noise_makes_the_unconditional_tokens_from_seeded_uniform_noise_of_the_conditional_inputs_shape(
    adapter, method
):
    faces = embeddings(3)
    inputs = torch.from_numpy(combine_embeddings(faces, method))
    noise = torch.rand(inputs.shape, generator=torch.Generator().manual_seed(NOISE_SEED)) * 0.3
    expected = resampled(adapter, noise if noise.ndim == 3 else noise.unsqueeze(1)).reshape(1, -1, DIMS.output_dim)

    tokens = adapter.tokens(faces, method, noise=0.3)

    assert torch.equal(tokens.uncond, expected)
    assert torch.equal(tokens.cond, adapter.tokens(faces, method).cond)
    assert torch.equal(tokens.uncond, adapter.tokens(faces, method, noise=0.3).uncond)
    assert not torch.allclose(tokens.uncond, adapter.tokens(faces, method).uncond, atol=1e-3)


@pytest.mark.parametrize("norm", [30.0, 1e3, 1e5, 1e7])
def test_large_norm_embeddings_give_finite_tokens_and_finite_half_precision_keys_and_values(adapter, norm):
    faces = embeddings(1) / 30 * norm  # far beyond any recogniser's raw norm (antelopev2's: about 20 to 35)

    tokens = adapter.tokens(faces)

    assert torch.isfinite(tokens.stacked()).all()
    for dtype in (torch.float16, torch.bfloat16):  # the Resampler runs in float32; only its K/V are cast
        for keys, values in adapter.identity_kv(tokens, dtype).values():
            assert keys.dtype == values.dtype == dtype
            assert torch.isfinite(keys).all() and torch.isfinite(values).all(), (norm, dtype)


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_per_picture_tokens_are_each_faces_own_tokens_sharing_one_unconditional_set(adapter, noise):
    faces = embeddings(3)

    tokens = adapter.tokens(faces, PER_PICTURE, noise)

    assert tokens.identities == 3 and tokens.cond.shape == (3, DIMS.num_queries, DIMS.output_dim)
    assert tokens.stacked().shape == (4, DIMS.num_queries, DIMS.output_dim)
    for i in range(3):
        alone = adapter.tokens(faces[i : i + 1], "average", noise)
        torch.testing.assert_close(tokens.cond[i : i + 1], alone.cond, atol=1e-5, rtol=1e-5)
        assert torch.equal(tokens.uncond, alone.uncond)
    assert not torch.allclose(tokens.cond[0], tokens.cond[1], atol=1e-3)


def test_per_picture_tokens_refuse_a_photo_without_a_face(adapter):
    results = [
        FaceAnalysisResult(faces=(), chosen=None, batch_index=0),
        FaceAnalysisResult(faces=(face(np.ones(512)),), chosen=0, batch_index=1),
    ]

    with pytest.raises(InstantIDError, match=r"photo\(s\) 1 of 2 have no face"):  # before any token is made
        adapter.face_tokens(InstantIDFaces(results), PER_PICTURE)


def face(embedding) -> DetectedFace:
    """A detected face with this embedding."""
    return DetectedFace(embedding=embedding, kps=np.ones((5, 2)), bbox=[0, 0, 9, 9], det_score=0.9, image_size=(64, 64))
