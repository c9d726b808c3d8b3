"""InstantID Doctor on a healthy model set-up (links to the stand-ins) and on each known misplacement."""

import shutil

import pytest
import torch

pytestmark = pytest.mark.host

PACK_FILES = ("1k3d68.onnx", "2d106det.onnx", "genderage.onnx", "glintr100.onnx", "scrfd_10g_bnkps.onnx")
LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4ab1d6435d639628a6f3e5008dd4f929edf4c4124b1a7169e1048f9fef534cdf\n"
    "size 260665334\n"
)


@pytest.fixture
def models(tmp_path, standins, monkeypatch):
    """A healthy model tree of links to the stand-ins, registered as ComfyUI's instantid, controlnet and insightface
    folders (and nothing else)."""
    import folder_paths

    source, root = standins / "models", tmp_path / "models"
    for relative in ("instantid/ip-adapter.bin", "controlnet/instantid/diffusion_pytorch_model.safetensors"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).symlink_to(source / relative)
    pack = root / "insightface" / "models" / "antelopev2"
    pack.mkdir(parents=True)
    for name in PACK_FILES:
        (pack / name).symlink_to(source / "insightface" / "models" / "antelopev2" / name)
    for name in ("instantid", "controlnet", "insightface"):
        extensions = folder_paths.folder_names_and_paths[name][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(root / name)], extensions))
    return root


def doctor(comfy_host) -> str:
    """The report InstantID Doctor outputs."""
    return comfy_host.node("InstantIDDoctor").execute().result[0]


def problems(report: str) -> list[str]:
    """The report's PROBLEM lines."""
    return [line.strip() for line in report.splitlines() if line.strip().startswith("PROBLEM")]


def test_the_stand_in_set_up_is_healthy_and_every_model_is_found_and_named(comfy_host, models):
    report = doctor(comfy_host)

    assert problems(report) == [] and report.startswith("InstantID Doctor: no problems found.")
    assert f"OK      {models / 'instantid' / 'ip-adapter.bin'}: InstantID's adapter" in report
    assert "diffusion_pytorch_model.safetensors: an SDXL ControlNet of IdentityNet's full size" in report
    assert "antelopev2: detector scrfd_10g_bnkps.onnx, recogniser" in report
    assert "face models run on: CPUExecutionProvider" in report and "import onnxruntime: imports" in report


def plain_ip_adapter() -> dict:
    """A plain SDXL IP-Adapter's layout (a linear projection of CLIP image features to 4 tokens), tiny."""
    return {
        "image_proj": {
            "proj.weight": torch.zeros(4 * 2048, 1280),
            "proj.bias": torch.zeros(4 * 2048),
            "norm.weight": torch.ones(2048),
            "norm.bias": torch.zeros(2048),
        },
        "ip_adapter": {f"{n}.to_{kv}_ip.weight": torch.zeros(8, 2048) for n in (1, 3) for kv in "kv"},
    }


def nest_the_face_pack(models):
    """The pack's zip unpacked inside the pack folder: antelopev2/antelopev2/*.onnx."""
    pack = models / "insightface" / "models" / "antelopev2"
    (pack / "antelopev2").mkdir()
    for name in PACK_FILES:
        (pack / name).rename(pack / "antelopev2" / name)


def add_a_stray_model(models):
    """A second detector dropped into antelopev2."""
    pack = models / "insightface" / "models" / "antelopev2"
    shutil.copyfile(pack / "scrfd_10g_bnkps.onnx", pack / "det_10g.onnx")


def lfs_pointer_for_glintr100(models):
    """glintr100.onnx as a Git LFS pointer (a clone without git-lfs)."""
    path = models / "insightface" / "models" / "antelopev2" / "glintr100.onnx"
    path.unlink()
    path.write_text(LFS_POINTER)


def canny_in_identitynets_place(models, standins):
    """A 'mid' SDXL canny ControlNet where IdentityNet goes."""
    path = models / "controlnet" / "instantid" / "diffusion_pytorch_model.safetensors"
    path.unlink()
    path.symlink_to(standins / "models" / "controlnet" / "diffusers_xl_canny_mid.safetensors")


def plain_ip_adapter_in_the_adapters_place(models):
    """A plain IP-Adapter saved as models/instantid/ip-adapter.bin."""
    path = models / "instantid" / "ip-adapter.bin"
    path.unlink()
    torch.save(plain_ip_adapter(), path)


BROKEN = {
    "nested face pack": (nest_the_face_pack, "antelopev2", "nested one folder too deep"),
    "stray model": (add_a_stray_model, "det_10g.onnx", "not one of antelopev2's files"),
    "LFS pointer": (lfs_pointer_for_glintr100, "antelopev2", "Git LFS pointer"),
    "canny ControlNet": (canny_in_identitynets_place, "diffusion_pytorch_model.safetensors", "not IdentityNet"),
    "plain IP-Adapter": (plain_ip_adapter_in_the_adapters_place, "ip-adapter.bin", "a plain IP-Adapter"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_each_known_misplacement_is_a_problem_that_names_the_file_and_the_fix(comfy_host, models, standins, case):
    breaks, subject, says = BROKEN[case]
    breaks(*((models, standins) if breaks is canny_in_identitynets_place else (models,)))

    report = doctor(comfy_host)

    found = [line for line in problems(report) if subject in line.split(": ")[0] and says in line]
    assert found, report
    assert not report.startswith("InstantID Doctor: no problems")
