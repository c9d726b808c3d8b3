// InstantID Keypoints Editor: a canvas in the node where the five face keypoints are dragged into place.
//
// The node's value is its `keypoints` STRING widget (versioned, frame-normalised JSON; the server checks it). The
// canvas only draws that value and writes it back: load, paste, clone and undo set the widget's value directly, so
// the canvas re-reads it whenever the node is drawn and never keeps points of its own. The canvas widget is added
// last and is never serialised (a UI-only widget before value widgets would shift their saved values).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_CLASS = "InstantIDKeypointsEditor";
const VALUE_VERSION = 1;
// IdentityNet's colours and limbs, as instantid_core/keypoints.py draws them (a limb takes its first point's colour).
const COLORS = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
  [255, 255, 0],
  [255, 0, 255],
];
const NAMES = ["left eye", "right eye", "nose", "left mouth corner", "right mouth corner"];
const LIMBS = [
  [0, 2],
  [1, 2],
  [3, 2],
  [4, 2],
];
const LIMB_DIMMING = 0.6;
const POINT_RADIUS = 10; // in output pixels
const LIMB_HALF_WIDTH = 4; // in output pixels
const MIRRORED = [1, 0, 2, 4, 3]; // a mirror swaps the eyes and the mouth corners
const FRAME_LIMITS = [-0.5, 1.5];
const FACE_KPS_UI = "instantid_face_kps";
const BACKGROUND_PROPERTY = "instantid_background";
const PRESETS = fetch(new URL("./keypoint_presets.json", import.meta.url))
  .then((r) => r.json())
  .then((d) => d.presets);

let defaultValue = null; // the Python default, read from the node definition

/** The value in `text` as {points, opacity}, or null when it is not a valid value. */
export function parseValue(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const inFrame = (v) => Number.isFinite(v) && v >= FRAME_LIMITS[0] && v <= FRAME_LIMITS[1];
  if (!value || value.version !== VALUE_VERSION || !Array.isArray(value.points) || value.points.length !== 5) {
    return null;
  }
  if (!value.points.every((p) => Array.isArray(p) && p.length === 2 && p.every(inFrame))) return null;
  const opacity = value.opacity ?? [1, 1, 1, 1, 1];
  if (!Array.isArray(opacity) || opacity.length !== 5 || !opacity.every((a) => a >= 0 && a <= 1)) return null;
  return { points: value.points.map((p) => [p[0], p[1]]), opacity: [...opacity] };
}

/** The stored text of a value: points rounded to 5 decimals (a 100k-pixel frame is still exact to the pixel). */
export function formatValue({ points, opacity }) {
  const round = (v) => Math.round(Math.min(Math.max(v, FRAME_LIMITS[0]), FRAME_LIMITS[1]) * 1e5) / 1e5;
  return JSON.stringify({
    version: VALUE_VERSION,
    points: points.map(([x, y]) => [round(x), round(y)]),
    opacity: opacity.map((a) => Math.round(a * 1000) / 1000),
  });
}

const rgb = ([r, g, b], alpha = 1, dim = 1) =>
  `rgb(${Math.round(r * alpha * dim)}, ${Math.round(g * alpha * dim)}, ${Math.round(b * alpha * dim)})`;

class KeypointsCanvas {
  constructor(node, store) {
    this.node = node;
    this.store = store;
    this.selection = new Set();
    this.drag = null;
    this.drawnKey = null;
    this.background = null; // {ref, image}
    this.faceKps = null;

    this.element = document.createElement("div");
    this.element.className = "instantid-kps-editor";
    Object.assign(this.element.style, { display: "flex", flexDirection: "column", gap: "4px", minHeight: "0" });
    this.toolbar = document.createElement("div");
    Object.assign(this.toolbar.style, { display: "flex", flexWrap: "wrap", gap: "4px", fontSize: "11px" });
    this.canvas = document.createElement("canvas");
    this.canvas.tabIndex = 0;
    this.canvas.title =
      "Drag a point; Ctrl+A selects all five, then drag to move, corner handle to scale, top handle to turn. " +
      "Arrows move (Shift: 10 px), +/- scale, [ ] turn, M mirrors, Esc clears the selection.";
    Object.assign(this.canvas.style, { flex: "1 1 auto", width: "100%", minHeight: "0", outline: "none" });
    this.element.append(this.toolbar, this.canvas);
    this.buildToolbar();

    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("pointercancel", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("keydown", (e) => this.onKeyDown(e));
    this.canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    this.resizeObserver = new ResizeObserver(() => this.redraw());
    this.resizeObserver.observe(this.canvas);
    this.restoreBackground();
  }

  // --- toolbar --------------------------------------------------------------------------------------------------

  button(label, title, action) {
    const b = document.createElement("button");
    b.textContent = label;
    b.title = title;
    b.dataset.action = label;
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      action();
    });
    this.toolbar.append(b);
    return b;
  }

  buildToolbar() {
    this.presetSelect = document.createElement("select");
    this.presetSelect.title = "Common poses (keeps each point's opacity)";
    this.presetSelect.append(new Option("preset…", ""));
    PRESETS.then((presets) => {
      for (const name of Object.keys(presets)) this.presetSelect.append(new Option(name, name));
    });
    this.presetSelect.addEventListener("change", async () => {
      const name = this.presetSelect.value;
      this.presetSelect.value = "";
      if (name) this.commit({ ...this.value(), points: (await PRESETS)[name].map((p) => [...p]) });
    });
    this.toolbar.append(this.presetSelect);
    this.button("all", "Select all five points (Ctrl+A): drag to move, handles to scale and turn", () =>
      this.selectAll()
    );
    this.button("mirror", "Mirror left and right (M)", () => this.mirror());
    this.button("reset", "Back to the node's default points", () => {
      if (defaultValue) this.commit(parseValue(defaultValue));
    });
    this.loadFaceButton = this.button("from face", "Take the keypoints of the connected face (after a run)", () => {
      if (this.faceKps) this.commit({ ...this.value(), points: this.faceKps.map((p) => [...p]) });
    });
    this.loadFaceButton.disabled = true;
    this.backgroundSelect = document.createElement("select");
    this.backgroundSelect.title = "A picture under the points, to place the face over a scene (not sent to the server)";
    for (const [value, label] of [
      ["", "background…"],
      ["image", "choose image"],
      ["face", "face preview"],
      ["none", "none"],
    ]) {
      this.backgroundSelect.append(new Option(label, value));
    }
    this.backgroundSelect.addEventListener("change", () => {
      const choice = this.backgroundSelect.value;
      this.backgroundSelect.value = "";
      if (choice === "image") this.chooseBackground();
      else if (choice === "face") this.setBackground(this.facePreviewRef());
      else if (choice === "none") this.setBackground(null);
    });
    this.toolbar.append(this.backgroundSelect);
    this.opacityInput = document.createElement("input");
    Object.assign(this.opacityInput, { type: "range", min: "0", max: "1", step: "0.05", disabled: true });
    this.opacityInput.title = "Opacity of the selected point: dimmer loosens IdentityNet there";
    this.opacityInput.style.width = "70px";
    this.opacityInput.addEventListener("input", () => this.setOpacity(Number(this.opacityInput.value)));
    this.toolbar.append(this.opacityInput);
  }

  // --- value ------------------------------------------------------------------------------------------------------

  /** The widget's value, or the default while the widget holds something invalid. */
  value() {
    return parseValue(this.store.value) ?? parseValue(defaultValue);
  }

  commit(value) {
    this.store.value = formatValue(value);
    this.store.callback?.(this.store.value);
    this.redraw();
    this.node.setDirtyCanvas?.(true, false);
  }

  /** Called whenever the node is drawn: pick up values set from outside (load, paste, undo). */
  syncFrom() {
    if (this.key() !== this.drawnKey) this.redraw();
  }

  frameSize() {
    const size = (name) => this.node.widgets?.find((w) => w.name === name)?.value ?? 1024;
    return [size("width"), size("height")];
  }

  key() {
    const c = this.canvas;
    return `${this.store.value}|${this.frameSize()}|${c.clientWidth}x${c.clientHeight}|${[...this.selection]}`;
  }

  // --- geometry: value (0..1 of the frame) <-> canvas (CSS pixels) -----------------------------------------------

  frame() {
    const [w, h] = this.frameSize();
    const cw = this.canvas.clientWidth;
    const ch = this.canvas.clientHeight;
    const scale = Math.min(cw / w, ch / h);
    return { x: (cw - w * scale) / 2, y: (ch - h * scale) / 2, w: w * scale, h: h * scale, scale };
  }

  toCanvas([x, y]) {
    const f = this.frame();
    return [f.x + x * f.w, f.y + y * f.h];
  }

  fromCanvas([cx, cy]) {
    const f = this.frame();
    return [(cx - f.x) / f.w, (cy - f.y) / f.h];
  }

  /** The canvas' box on the page and its zoom: the graph's zoom scales DOM widgets with a CSS transform. */
  clientBox() {
    const r = this.canvas.getBoundingClientRect();
    return { left: r.left, top: r.top, zoom: r.width / (this.canvas.clientWidth || 1) };
  }

  /** Where a frame position (0..1) is, in client (page) coordinates: for tests and pointer tools. */
  clientPosition(position) {
    const { left, top, zoom } = this.clientBox();
    const [x, y] = this.toCanvas(position);
    return [left + x * zoom, top + y * zoom];
  }

  /** Where point `index` is, in client coordinates. */
  clientPoint(index) {
    return this.clientPosition(this.value().points[index]);
  }

  eventPoint(e) {
    const { left, top, zoom } = this.clientBox();
    return [(e.clientX - left) / zoom, (e.clientY - top) / zoom];
  }

  /** The mean of the selected points: a turn about it keeps it in place, as the server's transforms do. */
  selectionCentre(points) {
    const chosen = [...this.selection].map((i) => points[i]);
    return [0, 1].map((axis) => chosen.reduce((sum, p) => sum + p[axis], 0) / chosen.length);
  }

  /** The selection's handles in canvas pixels: the box, its scale corner and its turn knob. */
  handles(points) {
    if (this.selection.size < 2) return null;
    const chosen = [...this.selection].map((i) => this.toCanvas(points[i]));
    const pad = 14;
    const x1 = Math.min(...chosen.map((p) => p[0])) - pad;
    const y1 = Math.min(...chosen.map((p) => p[1])) - pad;
    const x2 = Math.max(...chosen.map((p) => p[0])) + pad;
    const y2 = Math.max(...chosen.map((p) => p[1])) + pad;
    return { box: [x1, y1, x2, y2], scale: [x2, y2], turn: [(x1 + x2) / 2, y1 - 18] };
  }

  /** Points scaled by `factor` and turned by `degrees` about `centre`, in output pixels (the frame's aspect). */
  transformed(points, centre, factor, degrees) {
    const [w, h] = this.frameSize();
    const t = (degrees * Math.PI) / 180;
    const [cos, sin] = [Math.cos(t) * factor, Math.sin(t) * factor];
    return points.map((p, i) => {
      if (!this.selection.has(i)) return p;
      const dx = (p[0] - centre[0]) * w;
      const dy = (p[1] - centre[1]) * h;
      return [centre[0] + (dx * cos - dy * sin) / w, centre[1] + (dx * sin + dy * cos) / h];
    });
  }

  // --- drawing ----------------------------------------------------------------------------------------------------

  redraw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const [cw, ch] = [c.clientWidth, c.clientHeight];
    if (!cw || !ch) return; // collapsed or hidden: drawn again when shown
    if (c.width !== Math.round(cw * dpr) || c.height !== Math.round(ch * dpr)) {
      c.width = Math.round(cw * dpr);
      c.height = Math.round(ch * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#353535";
    g.fillRect(0, 0, cw, ch);
    const f = this.frame();
    g.fillStyle = "#000";
    g.fillRect(f.x, f.y, f.w, f.h);
    this.drawBackground(g, f);
    const value = this.value();
    this.drawKeypoints(g, f, value);
    this.drawSelection(g, value.points);
    const valid = parseValue(this.store.value) !== null;
    if (!valid) {
      g.fillStyle = "#f66";
      g.font = "12px sans-serif";
      g.fillText("invalid value: showing the default (Reset to fix)", 6, 16);
    }
    this.opacityInput.disabled = this.selection.size !== 1;
    if (this.selection.size === 1) this.opacityInput.value = String(value.opacity[[...this.selection][0]]);
    this.drawnKey = this.key();
  }

  drawBackground(g, f) {
    const image = this.background?.image;
    if (!image?.complete || !image.naturalWidth) return;
    // centre-cropped to the frame, as the keypoints of a photo are placed 'as in source'
    const scale = Math.max(f.w / image.naturalWidth, f.h / image.naturalHeight);
    const sw = f.w / scale;
    const sh = f.h / scale;
    g.save();
    g.globalAlpha = 0.6;
    g.drawImage(image, (image.naturalWidth - sw) / 2, (image.naturalHeight - sh) / 2, sw, sh, f.x, f.y, f.w, f.h);
    g.restore();
  }

  drawKeypoints(g, f, { points, opacity }) {
    const at = points.map((p) => this.toCanvas(p));
    const limbHalf = Math.max(LIMB_HALF_WIDTH * f.scale, 1.5);
    for (const [a, b] of LIMBS) {
      const [ax, ay] = at[a];
      const [bx, by] = at[b];
      g.save();
      g.translate((ax + bx) / 2, (ay + by) / 2);
      g.rotate(Math.atan2(ay - by, ax - bx));
      g.beginPath();
      g.ellipse(0, 0, Math.max(Math.hypot(ax - bx, ay - by) / 2, 0.5), limbHalf, 0, 0, 2 * Math.PI);
      g.fillStyle = rgb(COLORS[a], opacity[a], LIMB_DIMMING);
      g.fill();
      g.restore();
    }
    const radius = Math.max(POINT_RADIUS * f.scale, 4);
    at.forEach(([x, y], i) => {
      g.beginPath();
      g.arc(x, y, radius, 0, 2 * Math.PI);
      g.fillStyle = rgb(COLORS[i], opacity[i]);
      g.fill();
      if (this.selection.has(i)) {
        g.lineWidth = 2;
        g.strokeStyle = "#fff";
        g.stroke();
      }
    });
  }

  drawSelection(g, points) {
    const h = this.handles(points);
    if (!h) return;
    const [x1, y1, x2, y2] = h.box;
    g.save();
    g.strokeStyle = "#ddd";
    g.setLineDash([4, 3]);
    g.strokeRect(x1, y1, x2 - x1, y2 - y1);
    g.setLineDash([]);
    g.fillStyle = "#ddd";
    g.fillRect(h.scale[0] - 5, h.scale[1] - 5, 10, 10);
    g.beginPath();
    g.moveTo((x1 + x2) / 2, y1);
    g.lineTo(h.turn[0], h.turn[1]);
    g.stroke();
    g.beginPath();
    g.arc(h.turn[0], h.turn[1], 5, 0, 2 * Math.PI);
    g.fill();
    g.restore();
  }

  // --- pointer and keys -------------------------------------------------------------------------------------------

  hitPoint(at, points) {
    const radius = Math.max(POINT_RADIUS * this.frame().scale, 4) + 4;
    let best = -1;
    let bestDistance = radius;
    points.forEach((p, i) => {
      const [x, y] = this.toCanvas(p);
      const d = Math.hypot(x - at[0], y - at[1]);
      if (d <= bestDistance) [best, bestDistance] = [i, d];
    });
    return best;
  }

  onPointerDown(e) {
    if (e.button !== 0) return;
    // no preventDefault: ComfyUI's undo tracking listens for the mouseup that would suppress
    e.stopPropagation();
    this.canvas.focus();
    const at = this.eventPoint(e);
    const value = this.value();
    const h = this.handles(value.points);
    const near = (p) => p && Math.hypot(p[0] - at[0], p[1] - at[1]) <= 9;
    let mode;
    let pressed = -1;
    if (h && near(h.scale)) mode = "scale";
    else if (h && near(h.turn)) mode = "turn";
    else {
      const hit = this.hitPoint(at, value.points);
      if (hit < 0) {
        this.selection.clear();
        this.redraw();
        return;
      }
      if (!this.selection.has(hit)) this.selection = new Set([hit]);
      mode = "move";
      pressed = hit;
    }
    const centre = this.toCanvas(this.selectionCentre(value.points));
    this.drag = { mode, start: at, value, centre, pointer: e.pointerId, hit: pressed, moved: false };
    this.canvas.setPointerCapture(e.pointerId);
    this.redraw();
  }

  onPointerMove(e) {
    if (!this.drag || e.pointerId !== this.drag.pointer) return;
    e.stopPropagation();
    const at = this.eventPoint(e);
    const { mode, start, value, centre } = this.drag;
    this.drag.moved ||= Math.hypot(at[0] - start[0], at[1] - start[1]) > 2;
    let points;
    if (mode === "move") {
      const f = this.frame();
      const [dx, dy] = [(at[0] - start[0]) / f.w, (at[1] - start[1]) / f.h];
      points = value.points.map((p, i) => (this.selection.has(i) ? [p[0] + dx, p[1] + dy] : p));
    } else {
      const from = [start[0] - centre[0], start[1] - centre[1]];
      const to = [at[0] - centre[0], at[1] - centre[1]];
      const pivot = this.fromCanvas(centre);
      if (mode === "scale") {
        const factor = Math.max(Math.hypot(...to), 1) / Math.max(Math.hypot(...from), 1);
        points = this.transformed(value.points, pivot, factor, 0);
      } else {
        const degrees = ((Math.atan2(to[1], to[0]) - Math.atan2(from[1], from[0])) * 180) / Math.PI;
        points = this.transformed(value.points, pivot, 1, degrees);
      }
    }
    this.commit({ ...value, points });
  }

  onPointerUp(e) {
    if (!this.drag || e.pointerId !== this.drag.pointer) return;
    e.stopPropagation();
    const { hit, moved } = this.drag;
    this.drag = null;
    this.canvas.releasePointerCapture?.(e.pointerId);
    if (!moved && hit >= 0 && this.selection.size > 1) {
      // a click (no drag) on a point of a group selects that point alone
      this.selection = new Set([hit]);
      this.redraw();
    }
    checkUndoState();
  }

  onKeyDown(e) {
    const value = this.value();
    const [w, h] = this.frameSize();
    const step = e.shiftKey ? 10 : 1;
    const moves = { ArrowLeft: [-step / w, 0], ArrowRight: [step / w, 0], ArrowUp: [0, -step / h], ArrowDown: [0, step / h] };
    let next = null;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "a") {
      this.selectAll();
    } else if (e.key === "Escape") {
      this.selection.clear();
      this.redraw();
    } else if (e.key.toLowerCase() === "m" && !e.ctrlKey && !e.metaKey) {
      this.mirror();
    } else if (this.selection.size && moves[e.key]) {
      const [dx, dy] = moves[e.key];
      next = value.points.map((p, i) => (this.selection.has(i) ? [p[0] + dx, p[1] + dy] : p));
    } else if (this.selection.size > 1 && ["+", "=", "-", "[", "]"].includes(e.key)) {
      const centre = this.selectionCentre(value.points);
      const factor = { "+": 1.05, "=": 1.05, "-": 1 / 1.05 }[e.key] ?? 1;
      const degrees = { "[": -step, "]": step }[e.key] ?? 0;
      next = this.transformed(value.points, centre, factor, degrees);
    } else {
      return; // everything else (Ctrl+Z included) is ComfyUI's
    }
    e.preventDefault();
    e.stopPropagation();
    if (next) {
      this.commit({ ...value, points: next });
      checkUndoState();
    }
  }

  onWheel(e) {
    if (this.selection.size < 2) return; // the wheel zooms the graph unless a group is selected
    e.preventDefault();
    e.stopPropagation();
    const value = this.value();
    const centre = this.selectionCentre(value.points);
    const points = e.shiftKey
      ? this.transformed(value.points, centre, 1, Math.sign(e.deltaY) * 2)
      : this.transformed(value.points, centre, e.deltaY < 0 ? 1.03 : 1 / 1.03, 0);
    this.commit({ ...value, points });
    checkUndoState();
  }

  selectAll() {
    this.selection = new Set([0, 1, 2, 3, 4]);
    this.redraw();
  }

  mirror() {
    const { points, opacity } = this.value();
    this.commit({
      points: MIRRORED.map((i) => [1 - points[i][0], points[i][1]]),
      opacity: MIRRORED.map((i) => opacity[i]),
    });
    checkUndoState();
  }

  setOpacity(alpha) {
    if (this.selection.size !== 1) return;
    const value = this.value();
    const index = [...this.selection][0];
    value.opacity[index] = alpha;
    this.commit(value);
    checkUndoState();
  }

  // --- background (kept in node.properties: saved with the workflow, never sent in the prompt) --------------------

  chooseBackground() {
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "image/*";
    input.addEventListener("change", async () => {
      const file = input.files?.[0];
      if (!file) return;
      const body = new FormData();
      body.append("image", file);
      body.append("subfolder", "instantid_backgrounds");
      const response = await api.fetchApi("/upload/image", { method: "POST", body });
      if (!response.ok) {
        console.warn(`InstantID Keypoints Editor: the background upload failed (${response.status})`);
        return;
      }
      const { name, subfolder, type } = await response.json();
      this.setBackground({ filename: name, subfolder, type });
    });
    input.click();
  }

  /** The preview of the face analysis node connected to the `face` input, if it has run. */
  facePreviewRef() {
    const slot = this.node.inputs?.find((i) => i.name === "face");
    const link = slot?.link != null ? this.node.graph?.links?.[slot.link] ?? this.node.graph?.getLink?.(slot.link) : null;
    const images = link ? app.nodeOutputs?.[String(link.origin_id)]?.images : null;
    if (!images?.length) {
      console.info("InstantID Keypoints Editor: connect a face analysis node to `face` and run it once for its preview");
      return this.background?.ref ?? null;
    }
    const { filename, subfolder, type } = images[0];
    return { filename, subfolder, type };
  }

  setBackground(ref) {
    this.node.properties ??= {};
    if (ref) this.node.properties[BACKGROUND_PROPERTY] = ref;
    else delete this.node.properties[BACKGROUND_PROPERTY];
    this.restoreBackground();
    checkUndoState();
  }

  restoreBackground() {
    const ref = this.node.properties?.[BACKGROUND_PROPERTY];
    if (!ref) {
      this.background = null;
      this.redraw();
      return;
    }
    if (this.background?.ref === ref) return;
    const image = new Image();
    const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type });
    image.onload = () => this.redraw();
    image.src = api.apiURL(`/view?${query}`);
    this.background = { ref, image };
  }

  onFaceKeypoints(faceKps) {
    this.faceKps = faceKps;
    this.loadFaceButton.disabled = !faceKps;
  }

  remove() {
    this.resizeObserver.disconnect();
  }
}

function checkUndoState() {
  app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
}

app.registerExtension({
  name: "instantid.keypointsEditor",

  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_CLASS) return;
    defaultValue = nodeData.input?.required?.keypoints?.[1]?.default ?? null;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      this.instantidEditor?.onFaceKeypoints(output?.[FACE_KPS_UI]?.[0] ?? null);
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      this.instantidEditor?.restoreBackground();
    };
    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      this.instantidEditor?.remove();
      onRemoved?.apply(this, arguments);
    };
  },

  nodeCreated(node) {
    if (node.comfyClass !== NODE_CLASS) return;
    const store = node.widgets.find((w) => w.name === "keypoints");
    store.hidden = true; // the classic canvas
    store.options.hidden = true; // Nodes 2.0
    const editor = new KeypointsCanvas(node, store);
    node.instantidEditor = editor;
    const widget = node.addDOMWidget("keypoints_canvas", "instantid_keypoints", editor.element, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => 240,
      onDraw: () => editor.syncFrom(),
    });
    widget.serialize = false;
    widget.editor = editor;
    const [width, height] = node.size;
    node.setSize([Math.max(width, 340), Math.max(height, 420)]);
  },
});
