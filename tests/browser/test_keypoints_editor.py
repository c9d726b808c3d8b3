"""The keypoint editor in the real frontend, driven with real pointer and key events: it draws the points in
IdentityNet's colours, a drag changes the stored value, the queued prompt carries it and the server's keypoint image
has the eye where it was dragged; save and reload, undo, collapse, resize, clone and API export keep the points; no
console errors. A screenshot of the editor is kept in test-artifacts/ (the README shows it)."""

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from helpers.frontends import open_frontend
from scripts.harness.paths import REPO

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]
FRAME = (256, 256)  # the output size the tests set: a small keypoint image to fetch


def js_editor(node_id_expr: str = "window.__editorId") -> str:
    return f"app.canvas.graph.getNodeById({node_id_expr})"


class Page:
    """The frontend page with one editor node (and a preview of its keypoint image) in a fresh graph."""

    def __init__(self, browser, server):
        self.browser = browser
        self.server = server

    def js(self, expression: str):
        return self.browser.evaluate(expression)

    def new_graph(self) -> None:
        self.js(
            f"""(async () => {{
            await app.loadGraphData({{nodes: [], links: [], version: 0.4, last_node_id: 0, last_link_id: 0}});
            const graph = app.canvas.graph;
            const editor = LiteGraph.createNode("InstantIDKeypointsEditor");
            editor.pos = [320, 140];
            graph.add(editor);
            editor.widgets.find(w => w.name === "width").value = {FRAME[0]};
            editor.widgets.find(w => w.name === "height").value = {FRAME[1]};
            const preview = LiteGraph.createNode("PreviewImage");
            preview.pos = [820, 140];
            graph.add(preview);
            editor.connect(0, preview, 0);
            app.canvas.ds.offset = [0, 0];
            app.canvas.ds.scale = 1;
            app.canvas.setDirty(true, true);
            window.__editorId = editor.id;
            window.__previewId = preview.id;
        }})()"""
        )
        self.settle()
        self.js("app.extensionManager.workflow.activeWorkflow?.changeTracker?.checkState()")

    def settle(self, node: str = js_editor()) -> None:
        """Wait until the editor is drawn and stands still: the frontend places DOM widgets on its next frames."""
        rect = f"JSON.stringify({node}.instantidEditor.canvas.getBoundingClientRect())"
        self.browser.wait_for(
            f"""(async () => {{
            const e = {node}.instantidEditor; const before = {rect};
            await new Promise(r => setTimeout(r, 250));
            const r = e.canvas.getBoundingClientRect();
            return r.width > 50 && r.height > 50 && e.drawnKey !== null && {rect} === before;
        }})()"""
        )

    def value(self, node: str = js_editor()) -> dict:
        return json.loads(self.js(f"{node}.widgets.find(w => w.name === 'keypoints').value"))

    def point(self, index: int, node: str = js_editor()) -> list[float]:
        return self.js(f"{node}.instantidEditor.clientPoint({index})")

    def frame(self, node: str = js_editor()) -> dict:
        """The frame on the canvas, in client pixels."""
        frame = self.js(f"{node}.instantidEditor.frame()")
        zoom = self.js(f"{node}.instantidEditor.clientBox().zoom")
        return {key: value * zoom for key, value in frame.items()}

    def canvas_pixel(self, client_xy, node: str = js_editor()) -> tuple[int, ...]:
        x, y = client_xy
        return tuple(
            self.js(
                f"""(() => {{
            const c = {node}.instantidEditor.canvas; const r = c.getBoundingClientRect();
            const k = c.width / r.width;  // backing pixels per client pixel (zoom and devicePixelRatio)
            return Array.from(c.getContext('2d').getImageData(Math.round(({x} - r.left) * k),
                Math.round(({y} - r.top) * k), 1, 1).data.slice(0, 3));
        }})()"""
            )
        )

    def mouse(self, kind: str, x: float, y: float, pressed: bool = False) -> None:
        extra = {"button": "left", "buttons": 1, "clickCount": 1} if pressed or kind != "mouseMoved" else {}
        if kind == "mouseReleased":
            extra["buttons"] = 0
        self.browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def drag(self, start, end, steps: int = 8) -> None:
        (sx, sy), (ex, ey) = start, end
        self.mouse("mouseMoved", sx, sy)
        self.mouse("mousePressed", sx, sy)
        for i in range(1, steps + 1):
            self.mouse("mouseMoved", sx + (ex - sx) * i / steps, sy + (ey - sy) * i / steps, pressed=True)
        self.mouse("mouseReleased", ex, ey)

    def key(self, key: str, code: str, key_code: int, modifiers: int = 0) -> None:
        for kind in ("keyDown", "keyUp"):
            self.browser.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
                modifiers=modifiers,
            )

    def click(self, x: float, y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y)
        self.mouse("mouseReleased", x, y)


@pytest.fixture(scope="module")
def page(frontend, browser):
    """Each frontend (the pinned one and the newest ComfyUI accepts), opened once."""
    open_frontend(browser, frontend)
    browser.wait_for("!!LiteGraph.registered_node_types['InstantIDKeypointsEditor']")
    return Page(browser, frontend.server)


@pytest.fixture
def editor(page):
    """A fresh graph with the editor; after the test, no console errors."""
    errors_before = len(page.browser.errors())
    page.new_graph()
    yield page
    assert page.browser.errors()[errors_before:] == []


def test_the_editor_draws_the_default_points_in_identitynets_colours(editor):
    value = editor.value()

    assert value["version"] == 1 and len(value["points"]) == 5 and value["opacity"] == [1, 1, 1, 1, 1]
    for index, colour in enumerate(COLORS):
        assert editor.canvas_pixel(editor.point(index)) == colour


def test_a_pointer_drag_of_the_left_eye_changes_the_stored_value(editor):
    before = editor.value()["points"]
    frame = editor.frame()
    start = editor.point(0)

    editor.drag(start, (start[0] - 30, start[1] + 20))

    after = editor.value()["points"]
    assert after[0] == pytest.approx([before[0][0] - 30 / frame["w"], before[0][1] + 20 / frame["h"]], abs=2e-3)
    assert after[1:] == before[1:]
    assert editor.canvas_pixel((start[0] - 30, start[1] + 20)) == COLORS[0]


def test_the_queued_prompt_carries_the_dragged_point_and_the_keypoint_image_has_the_eye_there(editor):
    start = editor.point(0)
    before = editor.value()
    editor.drag(start, (start[0] - 35, start[1] + 25))
    value = editor.value()
    assert value["points"][0] != before["points"][0]

    queued = editor.js("app.queuePrompt(0, 1)")
    assert queued is False  # the frontend returns false when the prompt was queued (`!{}`)
    entry = wait_for_history(editor.server, value)

    x, y = value["points"][0]
    preview_id = str(editor.js("window.__previewId"))
    (png,) = editor.server.output_images(entry, preview_id)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape == (FRAME[1], FRAME[0], 3)
    assert tuple(image[int(y * FRAME[1]), int(x * FRAME[0])]) == COLORS[0]


def wait_for_history(server, value: dict, timeout: float = 120) -> dict:
    """The finished history entry of the prompt whose editor held `value`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in server.get_json("/history").values():
            prompt = entry["prompt"][2]
            sent = [n["inputs"]["keypoints"] for n in prompt.values() if n["class_type"] == "InstantIDKeypointsEditor"]
            if sent and json.loads(sent[0]) == value and entry["status"]["completed"]:
                return entry
        time.sleep(0.5)
    raise TimeoutError("the editor's prompt did not finish")


def test_save_and_reload_keep_the_points(editor):
    start = editor.point(2)
    editor.drag(start, (start[0] + 25, start[1] - 15))
    value = editor.value()

    editor.js("(async () => { await app.loadGraphData(app.canvas.graph.serialize()); })()")
    node = "app.canvas.graph.findNodesByType('InstantIDKeypointsEditor')[0]"
    editor.settle(node)

    assert editor.value(node) == value
    assert editor.canvas_pixel(editor.point(2, node), node) == COLORS[2]


def test_ctrl_z_undoes_a_drag(editor):
    before = editor.value()
    start = editor.point(1)
    editor.drag(start, (start[0] + 30, start[1] + 30))
    assert editor.value() != before

    editor.click(150, 700)  # empty graph canvas: the undo shortcut goes to the graph
    editor.key("z", "KeyZ", 90, modifiers=2)
    node = "app.canvas.graph.findNodesByType('InstantIDKeypointsEditor')[0]"
    editor.browser.wait_for(
        f"JSON.parse({node}.widgets.find(w => w.name === 'keypoints').value).points[1][0] === {before['points'][1][0]}"
    )

    assert editor.value(node) == before


def test_collapse_resize_and_clone_keep_the_editor_working(editor):
    node = js_editor()
    editor.js(f"{node}.collapse(); app.canvas.setDirty(true, true)")
    editor.browser.wait_for(f"{node}.instantidEditor.element.offsetParent === null")
    editor.js(f"{node}.collapse(); app.canvas.setDirty(true, true)")
    editor.browser.wait_for(f"{node}.instantidEditor.element.offsetParent !== null")
    width_before = editor.js(f"{node}.instantidEditor.canvas.clientWidth")

    editor.js(f"{node}.setSize([560, 640]); app.canvas.setDirty(true, true)")
    editor.browser.wait_for(f"{node}.instantidEditor.canvas.clientWidth > {width_before} + 100")
    editor.settle()
    assert editor.canvas_pixel(editor.point(0)) == COLORS[0]

    clone_id = editor.js(
        f"(() => {{ const c = {node}.clone(); c.pos = [320, 820]; app.canvas.graph.add(c);"
        " app.canvas.ds.offset = [0, -700]; app.canvas.setDirty(true, true); return c.id; })()"  # the clone in view
    )
    clone = js_editor(str(clone_id))
    editor.settle(clone)
    assert editor.value(clone) == editor.value()
    assert editor.js(f"{clone}.instantidEditor.element !== {node}.instantidEditor.element")
    original = editor.value()
    editor.js(
        f"{clone}.instantidEditor.commit({{...{clone}.instantidEditor.value(), points: "
        f"{clone}.instantidEditor.value().points.map(([x, y]) => [x + 0.05, y])}})"
    )
    assert editor.value() == original and editor.value(clone) != original


def test_the_api_export_carries_the_points_and_not_the_canvas(editor):
    start = editor.point(4)
    editor.drag(start, (start[0] + 10, start[1] + 10))

    output = editor.js("(async () => (await app.graphToPrompt()).output)()")

    inputs = output[str(editor.js("window.__editorId"))]["inputs"]
    assert json.loads(inputs["keypoints"]) == editor.value()
    assert set(inputs) == {"width", "height", "keypoints"}


def test_select_all_moves_scales_turns_and_mirror_presets_and_opacity_edit_the_value(editor):
    before = np.array(editor.value()["points"])
    editor.click(*editor.point(2))  # selects the nose and focuses the canvas
    editor.key("a", "KeyA", 65, modifiers=2)  # Ctrl+A: all five
    for _ in range(3):
        editor.key("ArrowRight", "ArrowRight", 39, modifiers=8)  # Shift: 10 output pixels
    moved = np.array(editor.value()["points"])
    assert np.allclose(moved - before, [[30 / FRAME[0], 0]] * 5, atol=1e-4)

    editor.key("]", "BracketRight", 221)
    turned = np.array(editor.value()["points"])
    assert np.allclose(turned.mean(axis=0), moved.mean(axis=0), atol=1e-4) and not np.allclose(turned, moved)

    editor.js(f"{js_editor()}.instantidEditor.toolbar.querySelector('[data-action=mirror]').click()")
    mirrored = np.array(editor.value()["points"])
    assert np.allclose(mirrored[[1, 0, 2, 4, 3], 0], 1 - turned[:, 0], atol=1e-4)

    presets = json.loads((REPO / "web" / "keypoint_presets.json").read_text())["presets"]
    editor.js(
        f"""(() => {{ const s = {js_editor()}.instantidEditor.presetSelect;
        s.value = 'three-quarter left'; s.dispatchEvent(new Event('change')); }})()"""
    )
    editor.browser.wait_for(
        f"JSON.parse({js_editor()}.widgets.find(w => w.name === 'keypoints').value)"
        f".points[0][0] === {presets['three-quarter left'][0][0]}"
    )

    editor.click(*editor.point(1))  # the right eye alone
    editor.js(
        f"""(() => {{ const o = {js_editor()}.instantidEditor.opacityInput;
        o.value = '0.4'; o.dispatchEvent(new Event('input')); }})()"""
    )
    assert editor.value()["opacity"] == [1, 0.4, 1, 1, 1]
    assert editor.canvas_pixel(editor.point(1)) == (0, round(255 * 0.4), 0)

    ARTIFACTS.mkdir(exist_ok=True)
    editor.browser.screenshot(
        ARTIFACTS / "keypoints_editor.png",
        clip=editor.js(
            f"(() => {{ const r = {js_editor()}.instantidEditor.element.getBoundingClientRect();"
            " return {x: r.left - 20, y: r.top - 120, width: r.width + 40, height: r.height + 140, scale: 1}; })()"
        ),
    )
