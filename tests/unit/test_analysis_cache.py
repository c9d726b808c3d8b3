"""The cache of face analyses: bounded by pictures and bytes, least recently used first, copies in and out."""

import numpy as np
import pytest

from instantid_core.analysis_cache import MAX_BYTES, MAX_PICTURES, AnalysisCache, faces_size, picture_key
from instantid_core.faces import DetectedFace

pytestmark = pytest.mark.unit


def face(seed: int) -> DetectedFace:
    rng = np.random.default_rng(seed)
    return DetectedFace(
        embedding=rng.normal(0, 1, 512).astype(np.float32),
        kps=rng.uniform(0, 100, (5, 2)).astype(np.float32),
        bbox=np.array([1, 2, 90, 99], dtype=np.float32),
        det_score=0.9,
        image_size=(128, 128),
    )


def test_the_key_is_the_pictures_content_and_the_settings():
    picture = np.zeros((4, 6, 3), dtype=np.uint8)
    changed = picture.copy()
    changed[0, 0, 0] = 1

    assert picture_key(picture, "a") == picture_key(picture.copy(), "a")
    assert len({picture_key(picture, "a"), picture_key(changed, "a"), picture_key(picture, "b")}) == 3
    assert picture_key(picture, "a") != picture_key(np.zeros((6, 4, 3), dtype=np.uint8), "a")  # same bytes, turned


def test_a_kept_analysis_comes_back_equal_and_cannot_be_changed_by_whoever_got_it():
    cache = AnalysisCache()
    faces = (face(1), face(2))

    cache.put("k", faces)
    first = cache.get("k")
    with pytest.raises(ValueError, match="read-only"):
        first[0].embedding[:] = 0  # a caller that writes into what it got

    again = cache.get("k")
    assert np.array_equal(again[0].embedding, face(1).embedding) and np.array_equal(again[1].kps, face(2).kps)
    assert cache.get("other") is None and (cache.hits, cache.misses) == (2, 1)


def test_the_least_recently_used_picture_goes_first_when_the_count_is_reached():
    cache = AnalysisCache(max_pictures=3)
    for key in "abc":
        cache.put(key, (face(1),))
    cache.get("a")

    cache.put("d", (face(2),))

    assert [k for k in "abcd" if cache.get(k) is not None] == ["a", "c", "d"]


def test_the_memory_bound_holds_whatever_is_put():
    one = faces_size((face(1),))
    cache = AnalysisCache(max_bytes=10 * one)

    for i in range(50):
        cache.put(str(i), (face(i),) * (1 + i % 3))
        assert cache.bytes <= 10 * one
    assert cache.bytes == sum(faces_size(cache.get(k)) for k in list(cache._entries))
    cache.put("huge", (face(0),) * 20)  # bigger than the whole cache: not kept
    assert cache.get("huge") is None


def test_the_stated_bounds():
    one = faces_size((face(1),))

    assert 2000 < one < 3000  # "a face takes about 2.3 KB"
    assert MAX_PICTURES == 512 and MAX_BYTES == 16 * 2**20
    assert MAX_BYTES // one > 6000  # thousands of faces before the byte bound matters
