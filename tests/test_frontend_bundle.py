"""The committed frontend bundle is fresh, type-checks, and carries no eval.

`tb_plugin_insight/plugin/static/index.js` is built from `frontend/` by `scripts/build_frontend.sh`
(esbuild, pinned exactly, deterministic). These tests rebuild it into a temp dir and compare bytes,
run `tsc --noEmit` and the frontend's unit tests (node --test), and grep the bundle for `eval(` /
`new Function` (TensorBoard's CSP allows 'unsafe-eval' today only for one old dependency; the tab
must not rely on it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
BUNDLE = ROOT / "tb_plugin_insight" / "plugin" / "static" / "index.js"
REBUILD_HINT = "run `bash scripts/build_frontend.sh` and commit tb_plugin_insight/plugin/static/index.js"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to build the frontend bundle (Node >= 20.19)",
)


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=FRONTEND, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The locked dependencies, installed with `npm ci` when absent or older than the lockfile."""
    marker = FRONTEND / "node_modules" / ".package-lock.json"
    lock = FRONTEND / "package-lock.json"
    if not marker.exists() or lock.stat().st_mtime > marker.stat().st_mtime:
        proc = _run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600)
        assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return FRONTEND / "node_modules"


@pytest.fixture(scope="module")
def fresh_bundle(node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("bundle") / "index.js"
    proc = _run(["node", "build.mjs", "--outfile", str(out)])
    assert proc.returncode == 0, f"frontend build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out.read_bytes()


def test_committed_bundle_is_fresh(fresh_bundle: bytes) -> None:
    assert BUNDLE.is_file(), f"{BUNDLE.relative_to(ROOT)} is missing: {REBUILD_HINT}"
    committed = BUNDLE.read_bytes()
    assert committed == fresh_bundle, (
        f"{BUNDLE.relative_to(ROOT)} differs from a fresh build of frontend/ "
        f"({len(committed)} vs {len(fresh_bundle)} bytes): {REBUILD_HINT}"
    )


def test_build_is_deterministic(fresh_bundle: bytes, tmp_path: Path) -> None:
    out = tmp_path / "again.js"
    proc = _run(["node", "build.mjs", "--outfile", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_bytes() == fresh_bundle


def test_typescript_type_checks(node_modules: Path) -> None:
    tsc = node_modules / "typescript" / "bin" / "tsc"
    proc = _run(["node", str(tsc), "--noEmit", "-p", "."])
    assert proc.returncode == 0, (
        f"tsc --noEmit reported errors:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    )


def test_frontend_unit_tests(node_modules: Path) -> None:
    """frontend/tests/*.test.ts (heatmap maths, colormaps, IPC, API client) under `node --test`."""
    proc = _run(["node", "scripts/unit_tests.mjs"])
    assert proc.returncode == 0, f"frontend unit tests failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("which", ["committed", "fresh"])
def test_bundle_has_no_eval(which: str, request: pytest.FixtureRequest) -> None:
    if which == "committed":
        if not BUNDLE.is_file():
            pytest.fail(f"{BUNDLE.relative_to(ROOT)} is missing: {REBUILD_HINT}")
        text = BUNDLE.read_text(encoding="utf-8")
    else:
        text = request.getfixturevalue("fresh_bundle").decode("utf-8")
    found = [m.group(0) for m in re.finditer(r"\beval\s*\(|\bnew\s+Function\b", text)]
    assert not found, f"the bundle uses eval / new Function: {found[:5]}"
    # One self-contained ES module exporting render(), with no imports of other files.
    assert re.search(r"export\s*\{[^}]*\brender\b[^}]*\}", text), "the bundle does not export render()"
    assert not re.search(r"""\bimport\s*\(|^\s*import\s|[;}]import\s*["'{*]""", text, re.M), (
        "the bundle imports other modules; it must be one self-contained file"
    )
