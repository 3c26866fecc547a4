"""The example notebook (docs/notebooks/insight-demo.ipynb) runs top to bottom in this environment.

Executed with nbclient in a kernel of this interpreter (ipykernel's own `python3` spec, nothing
registered); the cell that starts TensorBoard is tagged `skip-execution`, which nbclient skips.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebooks" / "insight-demo.ipynb"


def _kernel_is_this_python() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    # ipykernel's own spec in this environment (argv "python": jupyter_client starts sys.executable),
    # not one registered globally for another interpreter
    own = Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    return own and spec.argv[0] in ("python", sys.executable)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel inherits it: the notebook's logdir goes here
    assert _kernel_is_this_python(), "the python3 kernel is not this interpreter's ipykernel"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    skipped = [c for c in nb.cells if "skip-execution" in c.get("metadata", {}).get("tags", [])]
    assert len(skipped) == 1 and "%tensorboard" in skipped[0].source  # only the server cell is skipped
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        skip_cells_with_tag="skip-execution",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [c.get("outputs", []) for c in nb.cells if c.cell_type == "code"]
    assert not skipped[0].get("outputs")
    text = "".join(o.get("text", "") for cell in outputs for o in cell)
    assert "['shapes']" in text  # reader.runs
    assert [p.name for p in tmp_path.glob("insight-notebook-*/*")] == ["shapes"]
    images = [o for cell in outputs for o in cell if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the statistics plot and the CAM overlays
    errors = [o for cell in outputs for o in cell if o.get("output_type") == "error"]
    assert not errors
