"""A stand-in antelopev2 face pack: five small ONNX graphs with the real files' names and signatures.

insightface's model zoo routes each file by its signature, exactly as it routes the real pack:
scrfd_10g_bnkps.onnx -> SCRFD (9 outputs), glintr100.onnx -> ArcFaceONNX (112x112 -> 512), 1k3d68.onnx and
2d106det.onnx -> Landmark (192x192), genderage.onnx -> Attribute (96x96). The real insightface code (resizing,
anchor decoding, NMS, alignment) therefore runs unchanged on them.

None of them is trained: they are stand-ins (random weights), not the real antelopev2.
- The detector is hand-built to find "stand-in faces" (see images.py): per pixel it measures how magenta the pixel
  is, pools that to a quarter-resolution map and, with fixed convolutions at strides 8, 16 and 32 (two window sizes
  each, like SCRFD's two anchors), takes the area, centroid and spread of the magenta region inside each window.
  From those it reports the box (centroid +- spread), five keypoints at fixed places inside the box, and a score
  that is high only when the region is one filled rectangle that lies wholly inside the window. A plain grey, black
  or noise picture gives no face; several faces give one box each after insightface's NMS; the box follows the
  drawn size. Faces from about 12 to 326 pixels (in the detector's input, i.e. after insightface resizes the
  picture into det_size) are found; at det_size 640 that covers a face of 15%..45% of the shorter side of a
  512..1024 pixel photo. Bigger close-ups need a smaller det_size (retrying at 512, 384, 256 finds them).
- The recogniser averages the aligned 112x112 crop over an 8x8 grid, subtracts the grid of the neutral stand-in
  face and multiplies by a fixed random 192x512 matrix: the embedding depends on the identity texture, has a raw
  norm of about 22 (like glintr100's 15..30), and different identity seeds are far apart.
- The landmark and gender/age models are tiny random graphs (pooling and one linear layer) with the real shapes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scripts.standins.images import KEYPOINTS_IN_FACE, standin_face_patch

logger = logging.getLogger(__name__)

STANDIN_NOTE = "stand-in (random weights), not the real antelopev2"
OPSET = 17
IR_VERSION = 8
SEED = 20240131

DETECTOR_FILE = "scrfd_10g_bnkps.onnx"
RECOGNIZER_FILE = "glintr100.onnx"
FACE_PACK_FILES = (DETECTOR_FILE, RECOGNIZER_FILE, "1k3d68.onnx", "2d106det.onnx", "genderage.onnx")

# The detector: window sides (detector-input pixels, multiples of 8) per stride, one per anchor. A window reports
# a face whose sides are between MIN_FILL and MAX_FILL of its own side.
STRIDE_WINDOWS = {8: (40, 72), 16: (120, 176), 32: (256, 384)}
POOL = 4  # the magenta map is averaged over POOL x POOL pixels before the window sums
RING = 1.25  # the outer window (must hold nothing magenta beyond the inner one) is this much wider
MIN_FILL, MAX_FILL = 0.3, 0.85
MAGENTA_LOW, MAGENTA_HIGH = 0.5, 0.8  # min(r, b) - g in SCRFD's normalised units: 0 below LOW, 1 above HIGH
# Real scrfd_10g_bnkps output names, in SCRFD order: scores, boxes, keypoints, each at strides 8, 16, 32.
DETECTOR_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")

RECOGNIZER_GRID = 8
EMBEDDING_SIZE = 512
EMBEDDING_NORM = 22.0
ARCFACE_SIZE = 112


@dataclass
class _Graph:
    """Accumulates nodes and initializers of one ONNX graph under a name prefix."""

    prefix: str
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    count: int = 0

    def const(self, value, dtype=np.float32) -> str:
        """Add an initializer and return its name."""
        self.count += 1
        name = f"{self.prefix}_c{self.count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> str | list[str]:
        """Add a node (named after the prefix, never 'Sub...'/'Mul...') and return its output name(s)."""
        self.count += 1
        names = [f"{self.prefix}_{op_type.lower()}{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=f"{self.prefix}_{self.count}", **attrs))
        return names[0] if outputs == 1 else names

    def sigmoid_gate(self, value: str, slope: float, offset: float) -> str:
        """Sigmoid(slope * (value - offset))."""
        return self.op("Sigmoid", [self.op("Mul", [self.op("Sub", [value, self.const(offset)]), self.const(slope)])])


def _model(graph: _Graph, name: str, inputs, outputs, description: str) -> onnx.ModelProto:
    """Wrap a finished graph into a checked model that carries the stand-in note."""
    onnx_graph = helper.make_graph(graph.nodes, name, inputs, outputs, initializer=graph.initializers)
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="instantid-suite stand-ins",
        doc_string=f"{STANDIN_NOTE}. {description}",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"standin": STANDIN_NOTE, "generator": "scripts/standins/face_pack.py"})
    onnx.checker.check_model(model, full_check=True)
    return model


def _window_kernels(windows: tuple[int, ...]) -> np.ndarray:
    """Conv weights [6*A, 1, K, K]: per anchor a, channel q*A+a sums mask, u, v, u^2, v^2 and the outer mask."""
    anchors = len(windows)
    outer_cells = [int(np.ceil(RING * w / 8) * 8) // POOL for w in windows]
    k = max(outer_cells)
    offsets = np.arange(k, dtype=np.float32) - (k - 1) / 2  # cell centre relative to the window centre, in cells
    v, u = np.meshgrid(offsets, offsets, indexing="ij")
    weights = np.zeros((6 * anchors, 1, k, k), dtype=np.float32)
    for a, (window, outer) in enumerate(zip(windows, outer_cells, strict=False)):
        half = window // POOL / 2
        inner = ((np.abs(u) < half) & (np.abs(v) < half)).astype(np.float32)
        ring = ((np.abs(u) < outer / 2) & (np.abs(v) < outer / 2)).astype(np.float32)
        for q, plane in enumerate((inner, u * inner, v * inner, u * u * inner, v * v * inner, ring)):
            weights[q * anchors + a, 0] = plane
    return weights


def _detector_level(g: _Graph, pooled: str, stride: int, windows: tuple[int, ...]) -> tuple[str, str, str]:
    """Score (N,1), box distances (N,4) and keypoint distances (N,10) for one stride, in SCRFD's anchor order."""
    weights = _window_kernels(windows)
    anchors, k = len(windows), weights.shape[-1]
    sums = g.op(
        "Conv",
        [pooled, g.const(weights)],
        strides=[stride // POOL] * 2,
        pads=[k // 2, k // 2, k // 2 - 1, k // 2 - 1],
    )
    planes = g.op("Reshape", [sums, g.const([6, anchors, 0, 0], np.int64)])
    s0, sx, sy, sxx, syy, s_outer = (g.op("Gather", [planes, g.const(q, np.int64)], axis=0) for q in range(6))

    eps = g.const(1e-3)
    area = g.op("Add", [s0, eps])
    cx = g.op("Div", [sx, area])
    cy = g.op("Div", [sy, area])
    twelve = g.const(12.0)

    def side(second_moment: str, centre: str) -> str:
        variance = g.op("Sub", [g.op("Div", [second_moment, area]), g.op("Mul", [centre, centre])])
        variance = g.op("Relu", [g.op("Add", [variance, g.const(1 / 12)])])  # + the variance inside one cell
        return g.op("Sqrt", [g.op("Mul", [variance, twelve])])  # a uniform segment of length s has variance s^2/12

    width, height = side(sxx, cx), side(syy, cy)
    fill = g.op("Div", [s0, g.op("Add", [g.op("Mul", [width, height]), eps])])
    inside = g.op("Div", [s0, g.op("Add", [s_outer, eps])])
    window_cells = g.const(np.array(windows, dtype=np.float32).reshape(anchors, 1, 1) / POOL)
    largest = g.op("Div", [g.op("Max", [width, height]), window_cells])
    smallest = g.op("Div", [g.op("Min", [width, height]), window_cells])
    fill_error = g.op("Abs", [g.op("Sub", [fill, g.const(1.0)])])
    score = g.op(
        "Mul",
        [
            g.op("Mul", [g.sigmoid_gate(fill_error, -30.0, 0.15), g.sigmoid_gate(inside, 60.0, 0.93)]),
            g.op("Mul", [g.sigmoid_gate(largest, -20.0, MAX_FILL), g.sigmoid_gate(smallest, 20.0, MIN_FILL)]),
        ],
    )

    # Everything below in units of the stride (SCRFD multiplies the outputs by it); cells are POOL pixels.
    to_stride = g.const(POOL / stride)
    cx, cy, width, height = (g.op("Mul", [t, to_stride]) for t in (cx, cy, width, height))
    half_w = g.op("Mul", [width, g.const(0.5)])
    half_h = g.op("Mul", [height, g.const(0.5)])
    distances = [
        g.op("Sub", [half_w, cx]),
        g.op("Sub", [half_h, cy]),
        g.op("Add", [half_w, cx]),
        g.op("Add", [half_h, cy]),
    ]
    last = g.const([-1], np.int64)
    box = g.op("Concat", [g.op("Unsqueeze", [d, last]) for d in distances], axis=-1)

    rel = KEYPOINTS_IN_FACE - 0.5
    kx = g.op(
        "Add", [g.op("Unsqueeze", [cx, last]), g.op("Mul", [g.op("Unsqueeze", [width, last]), g.const(rel[:, 0])])]
    )
    ky = g.op(
        "Add", [g.op("Unsqueeze", [cy, last]), g.op("Mul", [g.op("Unsqueeze", [height, last]), g.const(rel[:, 1])])]
    )
    points = g.op("Concat", [g.op("Unsqueeze", [kx, last]), g.op("Unsqueeze", [ky, last])], axis=-1)  # [A,h,w,5,2]
    points = g.op("Reshape", [points, g.const([0, 0, 0, 10], np.int64)])

    def flatten(tensor: str, channels: int) -> str:
        """[A, h, w, C] -> [h*w*A, C] (anchor fastest, as SCRFD lays out its anchor centres)."""
        return g.op("Reshape", [g.op("Transpose", [tensor], perm=[1, 2, 0, 3]), g.const([-1, channels], np.int64)])

    return flatten(g.op("Unsqueeze", [score, last]), 1), flatten(box, 4), flatten(points, 10)


def build_detector() -> onnx.ModelProto:
    """The stand-in scrfd_10g_bnkps: input.1 [1,3,?,?] -> 9 outputs (scores, boxes, keypoints at strides 8/16/32)."""
    g = _Graph("det")
    red, green, blue = g.op("Split", ["input.1", g.const([1, 1, 1], np.int64)], outputs=3, axis=1)
    magenta = g.op("Sub", [g.op("Min", [red, blue]), green])
    ramp = g.op("Mul", [g.op("Sub", [magenta, g.const(MAGENTA_LOW)]), g.const(1 / (MAGENTA_HIGH - MAGENTA_LOW))])
    mask = g.op("Clip", [ramp, g.const(0.0), g.const(1.0)])
    pooled = g.op("AveragePool", [mask], kernel_shape=[POOL, POOL], strides=[POOL, POOL])
    levels = [_detector_level(g, pooled, stride, windows) for stride, windows in STRIDE_WINDOWS.items()]
    produced = [level[part] for part in range(3) for level in levels]
    for produced_name, output_name in zip(produced, DETECTOR_OUTPUTS, strict=False):
        g.nodes.append(helper.make_node("Identity", [produced_name], [output_name], name=f"det_out_{output_name}"))
    widths = [1, 1, 1, 4, 4, 4, 10, 10, 10]
    counts = [f"anchors_s{stride}" for stride in STRIDE_WINDOWS] * 3
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [count, width])
        for name, count, width in zip(DETECTOR_OUTPUTS, counts, widths, strict=False)
    ]
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])]
    return _model(g, "standin_scrfd", inputs, outputs, "Finds the magenta stand-in faces drawn by images.py.")


def _neutral_face_grid() -> np.ndarray:
    """The 8x8 grid (3*8*8 values, ArcFace normalisation, RGB) of the neutral stand-in face's aligned crop."""
    crop = standin_face_patch(ARCFACE_SIZE, None).astype(np.float32)
    cell = ARCFACE_SIZE // RECOGNIZER_GRID
    grid = crop.reshape(RECOGNIZER_GRID, cell, RECOGNIZER_GRID, cell, 3).mean(axis=(1, 3))
    return ((grid - 127.5) / 127.5).transpose(2, 0, 1).reshape(-1)


def _projection(rng: np.random.Generator, neutral: np.ndarray) -> np.ndarray:
    """A random [192, 512] matrix scaled so that drawn identities get a raw embedding norm near EMBEDDING_NORM."""
    projection = rng.standard_normal((neutral.size, EMBEDDING_SIZE)).astype(np.float32)
    cell = ARCFACE_SIZE // RECOGNIZER_GRID
    norms = []
    for identity in range(1, 17):
        crop = standin_face_patch(ARCFACE_SIZE, identity).astype(np.float32)
        grid = crop.reshape(RECOGNIZER_GRID, cell, RECOGNIZER_GRID, cell, 3).mean(axis=(1, 3))
        features = ((grid - 127.5) / 127.5).transpose(2, 0, 1).reshape(-1) - neutral
        norms.append(np.linalg.norm(features @ projection))
    return projection * np.float32(EMBEDDING_NORM / np.mean(norms))


def build_recognizer(rng: np.random.Generator) -> onnx.ModelProto:
    """The stand-in glintr100: input.1 [None,3,112,112] -> [None,512] raw (not normalised) embedding."""
    g = _Graph("rec")
    cell = ARCFACE_SIZE // RECOGNIZER_GRID
    pooled = g.op("AveragePool", ["input.1"], kernel_shape=[cell, cell], strides=[cell, cell])
    features = g.op("Flatten", [pooled], axis=1)
    neutral = _neutral_face_grid()
    centred = g.op("Sub", [features, g.const(neutral)])
    projected = g.op("MatMul", [centred, g.const(_projection(rng, neutral))])
    g.nodes.append(helper.make_node("Identity", [projected], ["1333"], name="rec_out"))
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, ARCFACE_SIZE, ARCFACE_SIZE])]
    outputs = [helper.make_tensor_value_info("1333", TensorProto.FLOAT, ["None", EMBEDDING_SIZE])]
    return _model(g, "standin_glintr100", inputs, outputs, "Embeds the identity texture of an aligned stand-in face.")


def build_pooled_linear(name: str, size: int, outputs: int, rng: np.random.Generator) -> onnx.ModelProto:
    """A tiny random model data [None,3,size,size] -> fc1 [None,outputs] (landmark and gender/age stand-ins)."""
    g = _Graph(name.replace(".", "_"))
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", ["data"])], axis=1)
    weight = rng.normal(0.0, 0.05, size=(3, outputs)).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, size=(outputs,)).astype(np.float32)
    g.nodes.append(helper.make_node("Gemm", [pooled, g.const(weight), g.const(bias)], ["fc1"], name=f"{g.prefix}_fc1"))
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, size, size])]
    outputs_info = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["None", outputs])]
    return _model(g, f"standin_{g.prefix}", inputs, outputs_info, "Random pooled linear layer with the real shapes.")


def write_face_pack(pack_dir: Path) -> list[Path]:
    """Write the five stand-in antelopev2 files into pack_dir (created if needed) and return their paths."""
    pack_dir = Path(pack_dir)
    pack_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    models = {
        DETECTOR_FILE: build_detector(),
        RECOGNIZER_FILE: build_recognizer(rng),
        "1k3d68.onnx": build_pooled_linear("1k3d68", 192, 3309, rng),
        "2d106det.onnx": build_pooled_linear("2d106det", 192, 212, rng),
        "genderage.onnx": build_pooled_linear("genderage", 96, 3, rng),
    }
    paths = []
    for file_name in FACE_PACK_FILES:
        path = pack_dir / file_name
        onnx.save_model(models[file_name], str(path))
        paths.append(path)
    logger.info("wrote the stand-in antelopev2 pack (%s) to %s", STANDIN_NOTE, pack_dir)
    return paths
