"""The TensorBoard side imports no torch: every module under tb_plugin_insight/plugin/ imports in a
process where importing torch fails (TensorBoard loads the plugin in environments without torch, and a
failing entry-point import takes all of TensorBoard down)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent / "tb_plugin_insight" / "plugin"

# A meta-path finder that refuses torch (and its submodules) before any other finder is asked.
NO_TORCH = """
import importlib, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is not importable here ({name})")
        return None
sys.meta_path.insert(0, NoTorch())
for name in sys.argv[1:]:
    importlib.import_module(name)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
print("imported", len(sys.argv) - 1)
"""


def plugin_modules() -> list[str]:
    return sorted(
        "tb_plugin_insight.plugin" + ("" if p.stem == "__init__" else "." + p.stem)
        for p in PLUGIN.glob("*.py")
    )


def test_every_plugin_module_imports_without_torch() -> None:
    modules = plugin_modules()
    assert "tb_plugin_insight.plugin.queries" in modules and len(modules) >= 10
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *modules], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"imported {len(modules)}"


def test_the_finder_does_refuse_torch() -> None:
    """The check above can fail: a module importing torch makes the same subprocess exit non-zero."""
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "tb_plugin_insight.capture.hooks"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "torch is not importable here" in out.stderr


def test_no_plugin_module_imports_a_private_name_of_another() -> None:
    """Names shared between modules are public; `from x import _y` across modules hides a dependency."""
    offenders = []
    for path in sorted(PLUGIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("tb_plugin_insight")
            ):
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []
