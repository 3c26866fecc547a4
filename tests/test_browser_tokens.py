"""End to end: the Insight tab's Tokens view in headless Chromium against a real `tensorboard` process.

Writes a logdir through the public API (a tiny GPT-2 from a config, `watch(probe=(inputs, next_tokens),
tokenizer=..., token_saliency_every=2)`, a few training steps) and opens the Tokens view: every probe
sequence shows its tokens (a user token "<script>" as text, never markup) and the predicted next token
beside it; the step player changes the shown step; the overlay selector offers both methods; nothing is
logged to the console. A screenshot goes to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

import pytest
import torch
from test_browser import ARTIFACTS, _wait_for, insight_page  # also skips without playwright
from test_browser import pytestmark as browser_marks

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from tb_plugin_insight import InsightWriter  # noqa: E402

pytestmark = browser_marks

RUN = "gpt2_tokens"
N, L, VOCAB = 3, 6, 30
STEPS, EVERY = 5, 2  # token saliency at 0, 2, 4


class Tokenizer:
    pad_token_id = 0

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return ["<pad>" if i == 0 else ("<script>alert(1)</script>" if i == 5 else f"w{i}") for i in ids]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_tokens") / "logs"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=16, bos_token_id=1, eos_token_id=1
        )
        model = transformers.GPT2LMHeadModel(config)
        ids = torch.randint(1, VOCAB, (N, L))
        ids[0, 1] = 5
        mask = torch.ones_like(ids)
        mask[2, 4:] = 0
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with InsightWriter(str(root / RUN)) as writer:
            writer.watch(
                model,
                every=1,
                probe=({"input_ids": ids, "attention_mask": mask}, torch.tensor([2, 3, 4])),
                tokenizer=Tokenizer(),
                token_saliency_every=EVERY,
                token_saliency_methods=["grad_x_input", "integrated_gradients"],
                token_saliency_steps=4,
                attention_every=EVERY,
            )
            for _ in range(STEPS):
                model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
                opt.step()
                opt.zero_grad()
    return root


def test_tokens_view(server: str, browser) -> None:
    url = f"{server}/#insight&p.insight.run={urllib.parse.quote(RUN)}"
    with insight_page(browser, url) as (page, frame, watch):
        _wait_for(
            page, lambda: frame.query_selector('[data-testid="view-tokens"]'), "the Tokens entry"
        ).click()
        _wait_for(
            page,
            lambda: len(frame.query_selector_all('[data-testid="token-sequence"]')) == N,
            "the probe sequences",
        )
        rows = frame.query_selector_all('[data-testid="token-sequence"]')
        tokens = [t.inner_text() for t in rows[0].query_selector_all('[data-testid="token"]')]
        assert len(tokens) == L and tokens[1] == "<script>alert(1)</script>"  # shown as text
        no_markup = "els => els.every(e => e.children.length === 0)"  # text only, no element parsed
        assert frame.eval_on_selector_all('[data-testid="token"]', no_markup)
        predictions = [p.inner_text() for p in frame.query_selector_all('[data-testid="token-prediction"]')]
        assert len(predictions) == N and all(p.startswith("next:") for p in predictions), predictions
        assert all("label:" in p for p in predictions)
        label = '[data-testid="token-step-label"]'
        assert frame.get_attribute(label, "data-step") == "4"  # the latest step first
        option_values = "els => els.map(e => e.value)"
        expected = ["saliency:grad_x_input", "saliency:integrated_gradients", "attention"]
        _wait_for(
            page,
            lambda: (
                frame.eval_on_selector_all('[data-testid="token-overlay-select"] option', option_values)
                == expected
            ),
            "the overlay choices",
        )
        before = rows[0].query_selector_all('[data-testid="token"]')[0].get_attribute("style")
        frame.select_option('[data-testid="token-overlay-select"]', "saliency:integrated_gradients")
        frame.query_selector('[data-testid="token-step-slider"]').fill("0")
        _wait_for(page, lambda: frame.get_attribute(label, "data-step") == "0", "step 0")
        _wait_for(
            page,
            lambda: frame.query_selector_all('[data-testid="token"]')[0].get_attribute("style") != before,
            "the colours of step 0",
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tokens_view.png"))
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)


def _alpha(style: str) -> float:
    """The opacity of a token's background colour (0 when transparent)."""
    found = re.search(r"rgba\([^)]*,\s*([\d.]+)\)", style)
    return float(found.group(1)) if found else 0.0


def _tokens(frame, row: int) -> list:
    return frame.query_selector_all('[data-testid="token-sequence"]')[row].query_selector_all(
        '[data-testid="token"]'
    )


def _styles(frame, row: int) -> list[str]:
    return [t.get_attribute("style") or "" for t in _tokens(frame, row)]


def _outlined(frame, row: int) -> list[int]:
    return [i for i, t in enumerate(_tokens(frame, row)) if "ins-tok-pos" in (t.get_attribute("class") or "")]


def _options(frame, select: str) -> list[str]:
    if not frame.query_selector(select):
        return []
    return frame.eval_on_selector_all(f"{select} option", "els => els.map(e => e.value)")


def test_tokens_attention_overlay(server: str, browser) -> None:
    """The attention overlay: module and head pickers, the last real token outlined as the query,
    padding without attention, a click on a token of the first sequence shows that query's row."""
    url = f"{server}/#insight&p.insight.view=tokens&p.insight.run={urllib.parse.quote(RUN)}"
    with insight_page(browser, url) as (page, frame, watch):
        select = '[data-testid="token-overlay-select"]'
        _wait_for(page, lambda: "attention" in _options(frame, select), "the attention overlay")
        frame.select_option(select, "attention")
        _wait_for(page, lambda: frame.query_selector('[data-testid="token-attn-head"]'), "the head picker")
        assert _options(frame, '[data-testid="token-attn-layer"]') == ["transformer.h.0.attn"]
        frame.select_option('[data-testid="token-attn-head"]', "1")
        _wait_for(page, lambda: any(_alpha(s) > 0 for s in _styles(frame, 2)), "attention colours")
        assert all(_alpha(s) == 0 for s in _styles(frame, 2)[4:])  # padding: no attention
        assert _outlined(frame, 2) == [3] and _outlined(frame, 0) == [L - 1]  # each last real token
        assert "step 4" in frame.inner_text('[data-testid="token-attn-note"]')
        assert _tokens(frame, 0)[1].inner_text() == "<script>alert(1)</script>"  # text, never markup
        assert frame.eval_on_selector_all(
            '[data-testid="token"]', "els => els.every(e => !e.children.length)"
        )
        _tokens(frame, 0)[2].click()  # per-query rows are stored for sample 0
        _wait_for(page, lambda: _outlined(frame, 0) == [2], "the clicked query")
        colours = _styles(frame, 0)
        assert all(_alpha(s) == 0 for s in colours[3:]), colours  # causal: no attention to later tokens
        assert max(_alpha(s) for s in colours[:3]) > 0
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)


def test_tokens_view_deep_link(server: str, browser) -> None:
    q = urllib.parse.quote
    link = (
        f"{server}/#insight&p.insight.view=tokens&p.insight.run={q(RUN)}&p.insight.tokens.step=2"
        f"&p.insight.tokens.overlay={q('saliency:integrated_gradients')}"
    )
    with insight_page(browser, link) as (page, frame, watch):
        label = '[data-testid="token-step-label"]'
        _wait_for(page, lambda: frame.query_selector(label), "the deep-linked Tokens view")
        _wait_for(page, lambda: frame.get_attribute(label, "data-step") == "2", "step 2 from the link")
        assert frame.eval_on_selector('[data-testid="token-overlay-select"]', "e => e.value") == (
            "saliency:integrated_gradients"
        )
        assert len(frame.query_selector_all('[data-testid="token-sequence"]')) == N
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)


def test_attention_view_shows_the_text_probe(server: str, browser) -> None:
    """The Attention view draws a text probe's attention as token strips, naming its query rule."""
    url = f"{server}/#insight&p.insight.view=attn&p.insight.run={urllib.parse.quote(RUN)}"
    with insight_page(browser, url) as (page, frame, watch):
        _wait_for(page, lambda: frame.query_selector('[data-testid="attn-query"]'), "the attention grid")
        assert "last real token" in frame.inner_text('[data-testid="attn-query"]')
        assert len(frame.query_selector_all('[data-testid="attn-head"]')) == 2
        assert not watch.errors, "console errors:\n" + "\n".join(watch.errors)
