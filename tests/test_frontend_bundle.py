"""The committed frontend bundle is fresh, type-checks, and carries no eval.

`tb_plugin_insight/plugin/static/index.js` is built from `frontend/` by `scripts/build_frontend.sh`
(esbuild, pinned exactly, deterministic). These tests rebuild it into a temp dir and compare bytes,
run `tsc --noEmit` and the frontend's unit tests (node --test), and grep the bundle for `eval(` /
`new Function` (TensorBoard's CSP allows 'unsafe-eval' today only for one old dependency; the tab
must not rely on it). The frontend's copy of the record field lists
(`frontend/src/generated/fields.ts`) must be what `scripts/gen_frontend_fields.py` writes from
`tb_plugin_insight/metadata.py` (checked without node).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
BUNDLE = ROOT / "tb_plugin_insight" / "plugin" / "static" / "index.js"
GENERATOR = ROOT / "scripts" / "gen_frontend_fields.py"
GENERATED = FRONTEND / "src" / "generated" / "fields.ts"
REBUILD_HINT = "run `bash scripts/build_frontend.sh` and commit tb_plugin_insight/plugin/static/index.js"

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to build the frontend bundle (Node >= 20.19)",
)


def test_generated_fields_are_current() -> None:
    """frontend/src/generated/fields.ts is what the generator writes from metadata.py today."""
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{GENERATED.relative_to(ROOT)} is stale against tb_plugin_insight/metadata.py: {REBUILD_HINT} "
        f"(it runs scripts/gen_frontend_fields.py), then commit both files.\n{proc.stdout}{proc.stderr}"
    )


def test_generated_fields_match_metadata() -> None:
    """The generated module lists exactly metadata's fields, in stored order (not only a byte match)."""
    from tb_plugin_insight import metadata

    text = GENERATED.read_text(encoding="utf-8")
    assert "do not edit" in text.splitlines()[0]

    def listed(name: str) -> list[str]:
        found = re.search(rf"export const {name} = \[(.*?)\] as const;", text, re.S)
        assert found, f"{name} is missing from {GENERATED.relative_to(ROOT)}"
        return re.findall(r'"([^"]*)"', found.group(1))

    assert listed("STAT_FIELDS") == list(metadata.STAT_FIELDS)
    assert listed("GRAD_FIELDS") == list(metadata.GRAD_FIELDS)
    assert listed("MAP_KINDS") == list(metadata.MAP_KINDS)
    assert f'export const DEFAULT_PROBE = "{metadata.DEFAULT_PROBE}";' in text


def test_frontend_copies_no_field_list_by_hand() -> None:
    """The frontend imports the field lists from generated/fields.ts instead of spelling them again."""
    from tb_plugin_insight import metadata

    fields = metadata.GRAD_FIELDS
    pattern = re.compile(r"\s*".join(re.escape(f'"{f}",') for f in fields[:6]))
    copies = [
        p.relative_to(ROOT)
        for p in (FRONTEND / "src").rglob("*.ts*")
        if p != GENERATED and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert not copies, f"GRAD_FIELDS spelled out by hand in {copies}: import it from generated/fields.ts"


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


@needs_node
def test_committed_bundle_is_fresh(fresh_bundle: bytes) -> None:
    assert BUNDLE.is_file(), f"{BUNDLE.relative_to(ROOT)} is missing: {REBUILD_HINT}"
    committed = BUNDLE.read_bytes()
    assert committed == fresh_bundle, (
        f"{BUNDLE.relative_to(ROOT)} differs from a fresh build of frontend/ "
        f"({len(committed)} vs {len(fresh_bundle)} bytes): {REBUILD_HINT}"
    )


@needs_node
def test_build_is_deterministic(fresh_bundle: bytes, tmp_path: Path) -> None:
    out = tmp_path / "again.js"
    proc = _run(["node", "build.mjs", "--outfile", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_bytes() == fresh_bundle


@needs_node
def test_typescript_type_checks(node_modules: Path) -> None:
    tsc = node_modules / "typescript" / "bin" / "tsc"
    proc = _run(["node", str(tsc), "--noEmit", "-p", "."])
    assert proc.returncode == 0, (
        f"tsc --noEmit reported errors:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    )


@needs_node
def test_frontend_unit_tests(node_modules: Path) -> None:
    """frontend/tests/*.test.ts (heatmap maths, colormaps, IPC, API client) under `node --test`."""
    proc = _run(["node", "scripts/unit_tests.mjs"])
    assert proc.returncode == 0, f"frontend unit tests failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


@needs_node
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
