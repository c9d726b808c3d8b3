"""The newest frontend's cache (scripts/harness/frontend.py) on a small wheel made in the test: the hash is checked
before anything is extracted, only the static folder is taken, a complete folder is never fetched again, and
`make test` provisions it."""

import re
import zipfile

import pytest

from instantid_core.download import file_sha256
from scripts.harness import frontend
from scripts.harness.paths import REPO

pytestmark = pytest.mark.unit


def make_wheel(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
    return path


@pytest.fixture
def wheel(tmp_path):
    return make_wheel(
        tmp_path / "comfyui_frontend_package-9.9.9-py3-none-any.whl",
        {
            "comfyui_frontend_package/__init__.py": b"",
            "comfyui_frontend_package/static/index.html": b"<html></html>",
            "comfyui_frontend_package/static/assets/app.js": b"console.log(1)",
            "comfyui_frontend_package-9.9.9.dist-info/METADATA": b"Name: comfyui_frontend_package\n",
        },
    )


def test_the_static_folder_is_extracted_after_the_hash_check_and_recorded_complete(wheel, tmp_path):
    cache = tmp_path / "cache"
    sha = file_sha256(wheel)

    root = frontend.extract_static(wheel, sha, frontend.frontend_folder("9.9.9", cache), "9.9.9")

    assert root == cache / "frontend-9.9.9" / "static"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "assets/app.js",
        "index.html",
    ]
    assert (root / "assets" / "app.js").read_bytes() == b"console.log(1)"
    assert (root.parent / "COMPLETE").read_text() == f"comfyui-frontend-package==9.9.9\nsha256={sha}\n"
    assert sorted(p.name for p in cache.iterdir()) == ["frontend-9.9.9"]  # no staging folder left


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_extracted(wheel, tmp_path):
    cache = tmp_path / "cache"

    with pytest.raises(frontend.FrontendError, match="refusing it"):
        frontend.extract_static(wheel, "0" * 64, frontend.frontend_folder("9.9.9", cache), "9.9.9")

    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_member_that_escapes_the_folder_is_refused(tmp_path):
    bad = make_wheel(
        tmp_path / "bad.whl",
        {
            "comfyui_frontend_package/static/index.html": b"",
            "comfyui_frontend_package/static/../../evil.txt": b"x",
        },
    )
    cache = tmp_path / "cache"

    with pytest.raises(frontend.FrontendError, match="unsafe member"):
        frontend.extract_static(bad, file_sha256(bad), frontend.frontend_folder("9.9.9", cache), "9.9.9")

    assert not (tmp_path / "evil.txt").exists() and list(cache.iterdir()) == []


def test_a_complete_folder_is_not_fetched_again_and_an_incomplete_one_is(wheel, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    sha = file_sha256(wheel)
    fetched = []

    def download(version, folder):
        fetched.append(version)
        return wheel

    monkeypatch.setattr(frontend, "download_wheel", download)
    root = frontend.ensure_frontend("9.9.9", sha, cache)
    assert frontend.ensure_frontend("9.9.9", sha, cache) == root
    assert fetched == ["9.9.9"]

    (root / "index.html").unlink()  # a damaged folder is replaced
    assert frontend.ensure_frontend("9.9.9", sha, cache) == root
    assert fetched == ["9.9.9", "9.9.9"] and (root / "index.html").is_file()


def test_a_missing_newest_frontend_says_how_to_provision_it(tmp_path):
    with pytest.raises(frontend.FrontendError, match=re.escape("make frontend-newest")):
        frontend.newest_frontend_root(tmp_path)


def test_make_test_provisions_the_newest_frontend_with_this_module():
    makefile = (REPO / "Makefile").read_text()

    assert re.search(r"^test: .*\bfrontend-newest\b", makefile, re.MULTILINE)
    assert re.search(r"^frontend-newest:.*\n\t\$\(PY\) -P -m scripts\.harness\.frontend$", makefile, re.MULTILINE)
    assert re.fullmatch(r"\d+\.\d+\.\d+", frontend.NEWEST_FRONTEND_VERSION)
    assert re.fullmatch(r"[0-9a-f]{64}", frontend.NEWEST_FRONTEND_SHA256)
