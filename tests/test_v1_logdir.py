"""Schema v1 stays readable, and v2 answers what v1 answered.

tests/fixtures/v1_logdir was written by commit 116cc2d (one record per layer per step and kind) and
v1_expected.json holds what that commit's plugin answered on it (tests/fixtures/make_v1_logdir.py
made both). The same training written by today's writer (layer tables) must give the same answers,
but for wall times.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from test_plugin import get_json, make_client

from tb_plugin_insight import metadata

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import make_v1_logdir  # noqa: E402

EXPECTED = json.loads((FIXTURES / "v1_expected.json").read_text())


def test_fixture_is_v1_and_small() -> None:
    from helpers import read_events

    versions, tags = set(), set()
    for event in read_events(FIXTURES / "v1_logdir" / make_v1_logdir.RUN):
        for value in event.summary.value:
            tags.add(value.tag)
            if value.metadata.plugin_data.content:
                versions.add(metadata.PluginData.FromString(value.metadata.plugin_data.content).version)
    assert versions == {0}
    assert "insight/activation_stats/0" in tags and "insight/activation_histogram/7" in tags
    assert not any(tag.startswith("insight/layer_table/") for tag in tags)
    size = sum(p.stat().st_size for p in (FIXTURES / "v1_logdir").rglob("*") if p.is_file())
    assert size < 300_000


@pytest.mark.parametrize("name", sorted(make_v1_logdir.routes()))
def test_v1_logdir_answers_as_written(name: str) -> None:
    client = _client(FIXTURES / "v1_logdir")
    assert get_json(client, make_v1_logdir.routes()[name]) == EXPECTED[name]


_CLIENTS: dict[Path, Any] = {}


def _client(logdir: Path) -> Any:
    if logdir not in _CLIENTS:
        _CLIENTS[logdir] = make_client(logdir)
    return _CLIENTS[logdir]


@pytest.fixture(scope="module")
def v2_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v2")
    make_v1_logdir.write(root / make_v1_logdir.RUN)
    return root


def test_v2_writes_one_record_per_step_and_kind(v2_logdir: Path) -> None:
    from helpers import read_events

    per_step: dict[int, list[str]] = {}
    for event in read_events(v2_logdir / make_v1_logdir.RUN):
        for value in event.summary.value:
            if value.tag.startswith("insight/layer_table/"):
                per_step.setdefault(event.step, []).append(value.tag.split("/")[2])
    assert sorted(per_step) == [0, 2, 4, 6]
    for kinds in per_step.values():  # 6 layers, one record of each kind
        assert sorted(kinds) == [
            "activation_histogram",
            "activation_stats",
            "grad_histogram",
            "gradient_stats",
            "param_histogram",
            "unit_stats",
        ]


@pytest.mark.parametrize("name", sorted(make_v1_logdir.routes()))
def test_v2_answers_what_v1_answered(v2_logdir: Path, name: str) -> None:
    """The same training, written as layer tables: the same answers (wall times aside; float32 as
    v1 stored them, or float64 where a whole table needs it)."""
    body = get_json(_client(v2_logdir), make_v1_logdir.routes()[name])
    if name == "model":  # the model table gained torchinfo's fields since v1: those v1 had must agree
        body = _without_additions(body, EXPECTED[name])
    if name == "maps":  # CAMs now carry why their layer was chosen, and how it was read
        assert all(
            s["layerReason"] and s["layerLayout"] == "nchw" for s in body["series"] if s["kind"] == "cam"
        )
        body = _without_additions(body, EXPECTED[name])
    _assert_close(body, EXPECTED[name], name)


def _without_additions(got: Any, want: Any) -> Any:
    """`got` reduced to the keys `want` has, at every level (fields added to a document since)."""
    if isinstance(want, dict) and isinstance(got, dict):
        return {key: _without_additions(got[key], want[key]) for key in want if key in got}
    if isinstance(want, list) and isinstance(got, list):
        return [_without_additions(a, b) for a, b in zip(got, want)] + got[len(want) :]
    return got


def _assert_close(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            if key not in ("wallTimes", "imageUrl"):
                _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            _assert_close(a, b, f"{where}[{i}]")
    elif isinstance(want, float) and isinstance(got, (int, float)):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12), where
    else:
        assert got == want, where
