"""Shared fixtures: tiny models, logdirs written through the public API, a real tensorboard process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import random_batch, sgd_step
from torch import nn

from tb_plugin_insight import InsightWriter

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """A 5-layer CNN small enough to run hundreds of steps in a second."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    )


def write_run(run_dir: Path, *, steps: int, every: int = 1, seed: int = 0) -> list[str]:
    """Train tiny_cnn for `steps` steps with a watch; returns the watched layer names."""
    model = tiny_cnn(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with InsightWriter(str(run_dir)) as writer:
        handle = writer.watch(model, every=every)
        for step in range(steps):
            loss = sgd_step(model, opt, *random_batch(gen))
            writer.add_scalar("loss", loss.item(), step)
        return handle.layers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def tensorboard_process(logdir: Path, *extra: str, timeout: float = 60.0) -> Iterator[str]:
    """Run `tensorboard` on 127.0.0.1 until its plugin listing answers; yield its base URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("tensorboard")
    cmd = [str(exe), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port), *extra]
    log = open(logdir.parent / f"tensorboard-{port}.log", "w+b")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"tensorboard exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/data/plugins_listing", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tensorboard did not answer in time")
            time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def server(logdir: Path) -> Iterator[str]:
    """`tensorboard` serving the requesting module's own `logdir` fixture; yields its base URL."""
    with tensorboard_process(logdir) as base:
        yield base


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """One intra-op thread: on a loaded 2-core machine torch's spinning threads slow tiny models ~30x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, driven by playwright) shared by every browser test module;
    the modules themselves skip when playwright is missing (see test_browser.pytestmark)."""
    from test_browser import CHROMIUM, CHROMIUM_ARGS, playwright_sync

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set INSIGHT_CHROMIUM)")
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
