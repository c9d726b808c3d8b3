"""InstantID Doctor's model checks: one fix per kind of file, never two contradicting or repeated ones."""

import onnx
import pytest

from instantid_core import doctor
from instantid_core.model_facts import ADAPTER, IDENTITYNET
from scripts.standins.face_pack import write_face_pack

pytestmark = pytest.mark.unit

LFS_POINTER = f"version https://git-lfs.github.com/spec/v1\noid sha256:{ADAPTER.sha256}\nsize {ADAPTER.size}\n"


def folders(tmp_path) -> doctor.ModelFolders:
    """The models/instantid, models/controlnet and models/insightface folders under tmp_path."""
    return doctor.ModelFolders(*((tmp_path / name,) for name in ("instantid", "controlnet", "insightface")))


def test_an_lfs_pointer_saved_as_the_adapter_gets_only_the_download_fix(tmp_path):
    pointer = tmp_path / "instantid" / ADAPTER.name
    pointer.parent.mkdir()
    pointer.write_text(LFS_POINTER)

    (finding, none_usable) = doctor.adapters(folders(tmp_path))

    assert finding.subject == str(pointer) and not finding.ok
    assert "Git LFS pointer" in finding.detail and ADAPTER.source in finding.detail
    assert "move it out" not in finding.detail and "not InstantID" not in finding.detail
    assert not none_usable.ok


def test_an_lfs_pointer_in_identitynets_place_gets_only_the_download_fix(tmp_path):
    pointer = tmp_path / "controlnet" / IDENTITYNET.relative
    pointer.parent.mkdir(parents=True)
    pointer.write_text(LFS_POINTER)

    (finding,) = doctor.identitynet(folders(tmp_path))

    assert "Git LFS pointer" in finding.detail and IDENTITYNET.source in finding.detail
    assert "not IdentityNet" not in finding.detail and "replace it" not in finding.detail


def test_a_pack_with_another_recogniser_says_so_once(tmp_path):
    pack = tmp_path / "insightface" / "models" / "buffalo_l"
    write_face_pack(pack)
    other = onnx.load(pack / "glintr100.onnx")
    other.graph.name = "w600k_r50"
    onnx.save(other, pack / "w600k_r50.onnx")
    (pack / "glintr100.onnx").unlink()

    findings = doctor.face_packs(folders(tmp_path))

    (buffalo,) = [f for f in findings if f.subject == str(pack)]
    assert buffalo.ok and "recogniser w600k_r50.onnx" in buffalo.detail
    assert buffalo.detail.count("not antelopev2's glintr100") == 1
    assert "identities will transfer poorly" in buffalo.detail
