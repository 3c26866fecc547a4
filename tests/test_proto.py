"""The committed generated proto matches its source and imports under the oldest protobuf we allow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PB2 = ROOT / "tb_plugin_insight" / "proto" / "plugin_data_pb2.py"


def test_generated_module_is_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (requirements-dev.txt) regenerates the proto")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)], check=True
    )
    fresh = tmp_path / "tb_plugin_insight" / "proto" / "plugin_data_pb2.py"
    assert fresh.read_text() == PB2.read_text(), "run: python scripts/gen_proto.py"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_gencode_is_not_newer_than_the_declared_protobuf_floor() -> None:
    gencode = re.search(r"Protobuf Python Version: ([\d.]+)", PB2.read_text()).group(1)
    floor = re.search(r'"protobuf>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    # protobuf refuses gencode newer than its runtime; the floor must be able to import ours.
    assert _version(gencode) <= _version(floor)


def test_registered_under_a_namespaced_file_name() -> None:
    from tb_plugin_insight.proto import plugin_data_pb2

    assert plugin_data_pb2.DESCRIPTOR.name == "tb_plugin_insight/proto/plugin_data.proto"
