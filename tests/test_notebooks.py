"""Every notebook in notebooks/ runs top to bottom against the real Neo4j, and is committed clean.

The notebooks are found by glob, so a notebook added later is executed without touching
this file. Each runs in a fresh kernel of this interpreter (the project's virtual
environment), with ``notebooks/`` as working directory, MovieLens from the tests' data
root, a cold text-embedding cache in a temporary folder and its ``STORE`` (if it has one)
in a temporary folder too, injected after the cell tagged ``parameters`` as papermill
does. A failing cell fails the test with the cell's source and traceback.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
#: wall-clock budget of one notebook (issue #8: at most 3 minutes on small data); a guard
#: against hangs and runaway data sizes, enforced as the time left for each cell
BUDGET_S = 180.0
#: what a notebook may import: kgrec, display libraries, and os for the parameter cell
ALLOWED_IMPORTS = {"kgrec", "pandas", "matplotlib", "networkx", "os"}


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _parsed(source: str) -> ast.Module:
    # IPython magics and shell escapes are not Python; notebooks here have none
    return ast.parse(source)


def test_there_are_notebooks() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_quickstart", "02_graph_queries_neo4j", "03_explanations"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state in the metadata; clear it (notebooks/README.md)"
    timed = [i for i, c in enumerate(nb.cells) if "execution" in c.get("metadata", {})]
    assert not timed, f"{path.name}: cells {timed} carry execution timings; clear them (notebooks/README.md)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_imports_kgrec_and_holds_no_logic(path: Path) -> None:
    """Only kgrec and display libraries are imported; functions and classes live in the package."""
    nb = nbformat.read(path, as_version=4)
    imported: set[str] = set()
    for src in _code(nb):
        for node in ast.walk(_parsed(src)):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), (
                f"{path.name}: defines {type(node).__name__} at line {node.lineno}; put helpers in the kgrec package"
            )
    assert "kgrec" in imported, f"{path.name}: does not import kgrec"
    extra = sorted(imported - ALLOWED_IMPORTS)
    assert not extra, f"{path.name}: imports {extra}; expected only {sorted(ALLOWED_IMPORTS)}"
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: expected one code cell tagged 'parameters' (found {len(params)})"


def test_jupyter_nbconvert_is_in_the_project_environment() -> None:
    """`python -m jupyter nbconvert --to notebook --execute …` (README, notebooks/README.md) is available."""
    import subprocess

    res = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--version"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and res.stdout.strip()[0].isdigit(), res.stderr


def test_kernel_is_this_interpreter(tmp_path: Path) -> None:
    """The notebooks' kernel (python3) resolves to the project's Python, on any machine."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import sys; print(sys.executable)")]
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = nb.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()
    assert all(nbformat.read(p, as_version=4).metadata.kernelspec.name == "python3" for p in NOTEBOOKS)


def _inject(nb: nbformat.NotebookNode, overrides: dict[str, str]) -> None:
    """Add a cell after the 'parameters' cell assigning the overrides it also assigns (papermill style)."""
    for pos, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            assigned = {
                t.id for node in ast.walk(_parsed(cell.source)) if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)
            }
            lines = [f"{k} = {v!r}" for k, v in overrides.items() if k in assigned]
            if lines:
                src = "# Parameters injected by tests/test_notebooks.py\n" + "\n".join(lines)
                nb.cells.insert(pos + 1, nbformat.v4.new_code_cell(src))
            return


@pytest.mark.slow
@pytest.mark.neo4j
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes(path: Path, ml_root: Path, tmp_path: Path, record_property, neo4j_left_empty) -> None:
    nb = nbformat.read(path, as_version=4)
    _inject(nb, {"STORE": str(tmp_path / "store")})
    env = {
        **os.environ,
        "KGREC_DATA": str(ml_root),
        "KGREC_CACHE": str(tmp_path / "cache"),  # cold: text vectors are computed in the budget
        "KGREC_NEO4J_URI": URI,
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    start: list[float] = []

    def time_left(cell: nbformat.NotebookNode) -> int:
        if not start:
            start.append(time.monotonic())
        return max(1, int(BUDGET_S - (time.monotonic() - start[0])))

    client = NotebookClient(
        nb, kernel_name="python3", timeout=int(BUDGET_S), timeout_func=time_left,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    t0 = time.monotonic()
    client.execute(env=env)  # raises CellExecutionError (the cell and its traceback) or CellTimeoutError
    record_property("seconds", round(time.monotonic() - t0, 1))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
