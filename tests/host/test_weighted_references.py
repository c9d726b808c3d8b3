"""Weights per reference photo, from the Face Analysis node's text to the identity tokens."""

import pytest
import torch

from helpers.host_runs import as_image
from scripts.standins.images import standin_photo

pytestmark = pytest.mark.host


def test_the_weights_typed_on_face_analysis_make_the_tokens_of_the_weighted_average(comfy_host, face_pack, adapter):
    photos = torch.cat([as_image(standin_photo(512, 512, [(256, 230, 180, identity)])) for identity in (1, 2)])
    analyze = comfy_host.node("InstantIDAnalyzeFaces")

    faces = analyze.execute(face_pack, photos, "largest", 0, "error", "2, 1").result[0]

    a, b = faces.embeddings()
    assert faces.weights == (2.0, 1.0)
    weighted = adapter.tokens(faces.identity_embeddings(), "average", 0.0, faces.weights)
    expected = adapter.tokens((2 * a[None] + b[None]) / 3)
    assert torch.allclose(weighted.cond, expected.cond, atol=1e-5)
    assert not torch.allclose(weighted.cond, adapter.tokens(faces.embeddings()).cond, atol=1e-3)
