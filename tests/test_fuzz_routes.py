"""Every route of the plugin fuzzed with hypothesis: random, missing, repeated, huge and malformed
parameters, unicode, path traversal on the static routes and other methods. Never a 5xx, never a
traceback in the body; every error of an Insight route is a JSON `{"error": {code, message}}`.

The route list comes from the plugin itself, so routes added later are fuzzed too.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.plugins import base_plugin
from test_plugin import PREFIX, make_client
from werkzeug.test import Client

from conftest import tensorboard_process, tiny_cnn, write_run
from tb_plugin_insight import InsightWriter, metadata
from tb_plugin_insight.plugin.plugin import InsightPlugin

pytestmark = pytest.mark.usefixtures("torch_one_thread")

HOSTILE_RUN = "<img src=x onerror=alert(1)> ü 😀 '\"&"
PARAM_NAMES = [
    "run", "layer", "stat", "fields", "probe", "kind", "method", "step", "tag", "layers", "runs", "page",
    "limit", "offset", "channel", "index", "bins", "sort", "filter", "family", "threshold", "sustain",
]  # fmt: skip
TRAVERSAL = [
    "../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd", "..\\..\\windows\\win.ini",
    "/etc/passwd", "index.js/../../plugin.py", "static/../plugin.py", ".index.js", "index.js%00.png",
    "%00", "....//....//etc/passwd", "index.js?x=../../", "./index.js", "index.js/", "%252e%252e%252f",
]  # fmt: skip
REQUESTS = {"count": 0}


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> tuple[Client, list[str]]:
    root = tmp_path_factory.mktemp("fuzz")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_run(root / "alpha", steps=3, every=1)
        write_run(root / HOSTILE_RUN, steps=2, every=1)
        for rank, steps in enumerate((2, 3, 1)):  # a rank family (rank_* routes), one rank stopped early
            write_run(root / "fam" / f"rank{rank}", steps=steps, every=1, seed=rank)
        model = tiny_cnn()
        with InsightWriter(str(root / "cams")) as writer:
            writer.watch(
                model, every=1, probe=torch.randn(2, 3, 8, 8), cam_every=1, saliency_methods=["gradient"],
                featurevis_every=1, featurevis_steps=1, featurevis_channels=2,
            )  # fmt: skip
            for _ in range(2):
                model(torch.randn(4, 3, 8, 8)).sum().backward()
    finally:
        torch.set_num_threads(threads)
    client = make_client(root)
    return client, ["alpha", HOSTILE_RUN, "cams", "fam", "fam/rank0", "activation", "gradient"]


def plausible_values(runs: list[str]) -> st.SearchStrategy[str]:
    known = [
        *runs, *metadata.STAT_FIELDS, *metadata.GRAD_FIELDS, *metadata.MAP_KINDS, "0", "1", "2", "3", "6",
        "gradcam", "gradient", metadata.DEFAULT_PROBE, "mean,std", "gradNorm,updateRatio", "-1",
        str(2**63), str(2**64), "1e3", "0x10", " 1", "NaN", "Infinity", "null", "[]", "{}", "true",
    ]  # fmt: skip
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(TRAVERSAL),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
        st.text(st.sampled_from("<>\"'&;%/\\.,=?#\x00\n\r\t "), max_size=20),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.sampled_from(["x" * 4097, "é" * 3000, "," * 5000, "0" * 25]),
    )


def query(runs: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    name = st.one_of(st.sampled_from(PARAM_NAMES), st.text(max_size=8))
    return st.lists(st.tuples(name, plausible_values(runs)), max_size=6)


def check(response: object, method: str) -> None:
    REQUESTS["count"] += 1
    status = response.status_code  # type: ignore[attr-defined]
    body = response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert status < 500, body[:500]
    assert "Traceback" not in body and 'File "' not in body, body[:500]
    if status >= 400 and method != "HEAD":  # HEAD answers carry no body
        assert response.headers["Content-Type"].startswith("application/json"), body[:200]  # type: ignore[attr-defined]
        error = json.loads(body)["error"]
        assert error["code"] == status and isinstance(error["message"], str) and error["message"]


ROUTES = sorted(InsightPlugin(base_plugin.TBContext(sampling_hints={})).get_plugin_apps())
SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("route", ROUTES)
def test_route_survives_random_parameters(route: str, fuzz_client: tuple[Client, list[str]]) -> None:
    client, runs = fuzz_client

    @settings(SETTINGS, max_examples=150)
    @given(params=query(runs), method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE"]))
    def run(params: list[tuple[str, str]], method: str) -> None:
        url = PREFIX + route + "?" + urllib.parse.urlencode(params)
        check(client.open(url, method=method), method)

    run()


def test_unknown_paths_and_traversal_never_serve_files_or_fail(fuzz_client: tuple[Client, list[str]]) -> None:
    client, _ = fuzz_client

    @settings(SETTINGS, max_examples=200)
    @given(path=st.one_of(st.sampled_from(TRAVERSAL), st.text(max_size=30)))
    def run(path: str) -> None:
        response = client.get(PREFIX + "/" + urllib.parse.quote(path, safe="/%?=."))
        REQUESTS["count"] += 1
        body = response.get_data()
        assert response.status_code < 500
        if response.status_code == 200:  # only ever the bundle (index.js, ./index.js, index.js/ ...)
            assert "index.js" in path and body.startswith(b"/*! tb-plugin-insight"), path
        else:  # no file content (passwd, Python source) and no traceback
            assert b"Traceback" not in body and b"root:" not in body and b"import " not in body

    run()


def test_images_tensorboard_cannot_read_get_a_clear_error(tmp_path: Path) -> None:
    """TensorBoard's Rust data server cannot read back blobs of a run whose name has '"': a JSON 422."""
    run = 'say "cheese"'
    model = tiny_cnn()
    with InsightWriter(str(tmp_path / "logs" / run)) as writer:
        writer.watch(model, every=1, probe=torch.randn(2, 3, 8, 8), cam_every=1)
        model(torch.randn(4, 3, 8, 8)).sum().backward()
    with tensorboard_process(tmp_path / "logs") as base:
        url = f"{base}{PREFIX}/probe_image?" + urllib.parse.urlencode({"run": run})
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as err:
                status, body = err.code, err.read()
            if status != 404 or time.monotonic() > deadline:  # 404 until the run is loaded
                break
            time.sleep(0.5)
    if status == 200:  # a data server that reads such keys (or the Python loader): the PNG itself
        assert body.startswith(b"\x89PNG")
        return
    assert status == 422, body[:300]
    message = json.loads(body)["error"]["message"]
    assert "double quote" in message and "--load_fast=false" in message
