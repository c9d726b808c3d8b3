"""Every error of the pack carries a stable code from ERROR_CODES, reported by ComfyUI as `instantid.<code>`."""

import ast
import pickle
import re
from pathlib import Path

import pytest

from instantid_core.errors import ERROR_CODES, KINDS, InstantIDError, problem_of, with_code

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(path for folder in ("instantid_core", "nodes") for path in (REPO / folder).rglob("*.py"))


def test_the_codes_are_the_published_ones():
    # API clients branch on these codes: renaming or removing one is a breaking change (say so in the changelog).
    # Adding one is not, but it needs its row in the README's Troubleshooting table.
    assert sorted(ERROR_CODES) == [
        "bad_embeddings",
        "bad_face_pack",
        "bad_face_value",
        "bad_keypoints",
        "bad_keypoints_value",
        "bad_name",
        "bad_percent_range",
        "bad_pose",
        "bad_setting",
        "bad_views",
        "bad_weights",
        "batch_mismatch",
        "download_failed",
        "file_exists",
        "index_out_of_range",
        "licence_not_accepted",
        "mask_aspect",
        "missing_dependency",
        "missing_input",
        "model_not_found",
        "no_face",
        "not_sdxl",
        "people_layout",
        "recognizer_mismatch",
        "size_mismatch",
        "wrong_controlnet",
        "wrong_input_type",
        "wrong_model_file",
    ]


def _caught_names(tree: ast.AST) -> dict[ast.AST, set[str]]:
    """For every node, the names bound by the `except InstantIDError as name` handlers around it."""
    bound: dict[ast.AST, set[str]] = {}

    def visit(node: ast.AST, names: set[str]) -> None:
        bound[node] = names
        for child in ast.iter_child_nodes(node):
            inner = names
            if (
                isinstance(node, ast.ExceptHandler)
                and node.name
                and isinstance(node.type, ast.Name)
                and node.type.id == "InstantIDError"
            ):
                inner = names | {node.name}
            visit(child, inner)

    visit(tree, set())
    return bound


def _code_problem(call: ast.Call, caught: set[str]) -> str | None:
    """What is wrong with the code of an `InstantIDError(...)` call, or None."""
    if len(call.args) != 2 or call.keywords:
        return f"{len(call.args)} positional argument(s) and {len(call.keywords)} keyword(s), not (message, code)"
    code = call.args[1]
    if isinstance(code, ast.Constant) and isinstance(code.value, str):
        return None if code.value in ERROR_CODES else f"unknown code {code.value!r}"
    # re-raising a caught error with more context keeps its code: `except InstantIDError as e: ... e.code`
    if (
        isinstance(code, ast.Attribute)
        and code.attr == "code"
        and isinstance(code.value, ast.Name)
        and code.value.id in caught
    ):
        return None
    return f"the code is {ast.unparse(code)}, not a string literal (or the caught error's .code)"


def test_every_error_raised_or_returned_names_a_known_code():
    offenders = []
    calls = 0
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        caught = _caught_names(tree)
        where = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "InstantIDError":
                calls += 1
                if problem := _code_problem(node, caught[node]):
                    offenders.append(f"{where}:{node.lineno}: {problem}")
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id == "KINDS"
                and path.name != "errors.py"  # where KINDS is made and looked up by a checked code
            ):
                key = node.slice
                if not (isinstance(key, ast.Constant) and key.value in ERROR_CODES):
                    offenders.append(f"{where}:{node.lineno}: KINDS[{ast.unparse(key)}] is not a known code")

    assert calls > 100  # the scan found the pack's errors
    assert offenders == []


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_an_error_is_reported_by_comfyui_as_instantid_dot_its_code(code):
    with pytest.raises(InstantIDError) as raised:
        raise InstantIDError("What is wrong, and what to do.", code)

    error = raised.value
    assert type(error).__module__ + "." + type(error).__qualname__ == f"instantid.{code}"
    assert isinstance(error, InstantIDError) and isinstance(error, KINDS[code])
    assert (error.code, str(error)) == (code, "What is wrong, and what to do.")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.code, str(again)) == (type(error), code, "What is wrong, and what to do.")


def test_an_unknown_or_missing_code_is_refused():
    with pytest.raises(ValueError, match="unknown InstantID error code 'no_such_code'"):
        InstantIDError("message", "no_such_code")
    with pytest.raises(ValueError, match="unknown InstantID error code None"):
        InstantIDError("message")
    with pytest.raises(ValueError, match="no_such_code"):
        with_code("message", "no_such_code")


def test_a_refusal_before_the_prompt_runs_ends_in_its_code():
    def refuse(value):
        raise InstantIDError(f"{value} is not a view.", "bad_views")

    assert problem_of(refuse, "side") == "side is not a view. [instantid.bad_views]"
    assert problem_of(lambda value: None, "frontal") is None


def readme_codes() -> list[str]:
    """The codes in the rows of the README's 'Error codes' table (under Troubleshooting)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    troubleshooting = readme.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    table = troubleshooting.split("\n### Error codes\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)


def test_the_readme_explains_every_code_once_and_no_other():
    codes = readme_codes()

    assert sorted(codes) == sorted(ERROR_CODES)
    assert len(codes) == len(set(codes))
