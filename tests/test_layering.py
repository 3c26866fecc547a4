"""The package's layering, held by a test: explain/ is pure explanation maths, modules use only each
other's public names, and each capability is one recorder module in the registry."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import tb_plugin_insight

PACKAGE = Path(tb_plugin_insight.__file__).parent
RECORDING_SIDE = ("capture", "plugin", "writer", "recorders", "session", "handle", "sink", "records")


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if not p.name.endswith("_pb2.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = name.split(".")[1:]
    base = PACKAGE.joinpath(*relative) if relative else PACKAGE
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def package_imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import of a tb_plugin_insight module in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [
                (a.name, None, node.lineno) for a in node.names if a.name.startswith("tb_plugin_insight")
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tb_plugin_insight"):
            found += [(node.module or "", a.name, node.lineno) for a in node.names]
    return found


def test_explain_imports_nothing_from_the_recording_side() -> None:
    explain = [p for p in modules() if p.parent.name == "explain"] + [
        PACKAGE / "cam.py",
        PACKAGE / "saliency.py",
        PACKAGE / "featurevis.py",
    ]
    assert len(explain) >= 8
    bad = []
    for path in explain:
        for module, name, line in package_imports(path):
            target = f"{module}.{name}" if name and is_module(f"{module}.{name}") else module
            top = target.split(".")[1] if "." in target else ""
            if top in RECORDING_SIDE:
                bad.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_module_uses_another_modules_private_names() -> None:
    bad = []
    for path in modules():
        tree = ast.parse(path.read_text())
        aliases: dict[str, str] = {}  # local name -> the tb_plugin_insight module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tb_plugin_insight"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.append(
                            f"{path.relative_to(PACKAGE)}:{node.lineno} imports {node.module}.{alias.name}"
                        )
                    full = f"{node.module}.{alias.name}"
                    if is_module(full):
                        aliases[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("tb_plugin_insight") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(
                    f"{path.relative_to(PACKAGE)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"
                )
    assert not bad, "\n".join(bad)


def test_every_capability_is_one_recorder_module_in_the_registry() -> None:
    from tb_plugin_insight import recorders
    from tb_plugin_insight.recorders.base import Recorder

    names = [cls.name for cls in recorders.REGISTRY]
    assert names == [
        "activation_stats",
        "units",
        "histograms",
        "health",
        "gradients",
        "param_histograms",
        "model_table",
        "feature_maps",
        "featurevis",
        "cams",
        "saliency",
        "token_saliency",
        "attention",
    ]
    modules_of = [cls.__module__ for cls in recorders.REGISTRY]
    assert len(set(modules_of)) == len(modules_of)  # one module each
    assert all(issubclass(cls, Recorder) for cls in recorders.REGISTRY)
    found = {m.name for m in pkgutil.iter_modules(recorders.__path__)} - {"base"}
    assert found == {m.rsplit(".", 1)[1] for m in modules_of}  # and no recorder module left out


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_over_100_lines(path: Path) -> None:
    """Small functions with one job each (InsightWriter, a facade, stays near 300 lines)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 100, f"{node.name} is {length} lines"
    importlib.import_module(module_name(path))  # and every module imports on its own
