"""The pack loads when a dependency of its own is broken: a real ComfyUI server, started with opencv, insightface or
onnxruntime made unimportable, lists every node of the pack, and running face analysis names the broken piece and the
install command, as InstantID Doctor does."""

import pytest

from helpers.server_prompts import FACE_A, analysis_prompt
from scripts.harness.comfy_server import PromptError, start_server
from scripts.harness.paths import PACK_LINK_NAME

pytestmark = pytest.mark.server

BROKEN = {  # module -> the distribution the messages must name
    "cv2": "opencv-python-headless",
    "insightface": "insightface",
    "onnxruntime": "onnxruntime",
}
DOCTOR = {"1": {"class_type": "InstantIDDoctor", "inputs": {}}}


@pytest.fixture(scope="module")
def healthy_nodes(comfy_server):
    """The node ids this pack registers on a server with every dependency in place."""
    info = comfy_server.get_json("/object_info")
    return {node_id for node_id, node in info.items() if node["python_module"] == f"custom_nodes.{PACK_LINK_NAME}"}


@pytest.mark.parametrize("module", BROKEN)
def test_a_broken_dependency_leaves_every_node_listed_and_face_analysis_names_it(
    tmp_path_factory, standins, healthy_nodes, module
):
    shadow = tmp_path_factory.mktemp(f"broken-{module}")
    (shadow / module).mkdir()
    (shadow / module / "__init__.py").write_text(f"raise ImportError('{module} is broken in this test')\n")
    inputs = sorted((standins / "input").iterdir())
    server = start_server(
        tmp_path_factory.mktemp(f"server-{module}"), standins / "models", inputs, env={"PYTHONPATH": str(shadow)}
    )
    try:
        info = server.get_json("/object_info")
        assert len(healthy_nodes) >= 20 and healthy_nodes <= set(info)
        assert "IMPORT FAILED" not in server.log_tail(200_000)

        with pytest.raises(PromptError) as raised:
            server.run(analysis_prompt(FACE_A))
        (error,) = [m[1] for m in raised.value.body["status"]["messages"] if m[0] == "execution_error"]
        message = error["exception_message"]
        assert error["exception_type"] == "instantid.missing_dependency", message
        assert f"needs {BROKEN[module]}" in message and f"'{module}' cannot be imported" in message
        assert f"-m pip install {BROKEN[module]}" in message

        (report,) = server.run(DOCTOR)["outputs"]["1"]["text"]
        assert f"PROBLEM import {module}: fails (ImportError: {module} is broken in this test)" in report
    finally:
        server.stop()
