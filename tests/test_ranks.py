"""The rank comparison: families of per-rank runs (`ranks="all"`), their spread and the rank that departs.

Per-rank runs are written in this process, one InsightWriter per rank with RANK / WORLD_SIZE set as
torchrun sets them (ranks.process_rank), each rank training the same initial model on its own data like
a data-parallel replica. In family "job" rank 2's inputs are multiplied by 10 from step DEPART on.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from test_plugin import get_json, make_client
from torch import nn
from werkzeug.test import Client

from tb_plugin_insight import InsightWriter, read
from tb_plugin_insight.plugin import rank_families, rank_spread

pytestmark = pytest.mark.usefixtures("torch_one_thread")

STEPS, EVERY, DEPART, ODD = 16, 2, 6, 2


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)  # every rank starts from the same weights, as DDP replicas do
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))


def write_family(
    logdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    world: int,
    *,
    odd: int | None = None,
    same_data: bool = False,
    steps: dict[int, int] | None = None,
) -> None:
    """`world` ranks writing `<logdir>/rank<r>`; rank `odd` gets 10x inputs from step DEPART on;
    `steps` gives a rank fewer training steps (it stopped early)."""
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        model = _mlp()
        gen = torch.Generator().manual_seed(0 if same_data else 100 + rank)
        with InsightWriter(str(logdir), ranks="all") as writer:
            writer.watch(model, every=EVERY)
            for step in range((steps or {}).get(rank, STEPS)):
                x = torch.randn(64, 8, generator=gen)
                if rank == odd and step >= DEPART:
                    x = x * 10
                model(x).pow(2).mean().backward()
                model.zero_grad()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ranks")
    with pytest.MonkeyPatch.context() as mp:
        write_family(root / "job", mp, 4, odd=ODD)
        write_family(root / "equal", mp, 3, same_data=True)
        write_family(root / "noisy", mp, 4)
        write_family(root / "early", mp, 3, steps={1: 7})
        write_family(root / "pair", mp, 2, odd=1)
        write_family(root / "lonely", mp, 2)
        mp.delenv("RANK")
        mp.delenv("WORLD_SIZE")
    (root / "lonely" / "rank1").rename(root / "lonely" / "other")  # a family needs two ranks
    return root


@pytest.fixture(scope="module")
def client(logdir: Path) -> Client:
    return make_client(logdir)


def q(**params: object) -> str:
    return urllib.parse.urlencode(params)


def test_families_are_runs_named_rank_r_sharing_a_prefix() -> None:
    runs = [
        "a/rank0",
        "a/rank1",
        "a/rank10",
        "b/rank0",
        "rank0",
        "rank1",
        "c",
        "a/rank1x",
        "d/rank01",
        "d/rank1",
    ]
    found = {f.name: (f.ranks, f.runs) for f in rank_families.families(runs)}
    assert found == {
        ".": ((0, 1), ("rank0", "rank1")),
        "a": ((0, 1, 10), ("a/rank0", "a/rank1", "a/rank10")),
    }  # b: one rank; d: rank 1 twice, kept once


def test_rank_families_route(client: Client) -> None:
    body = get_json(client, "/rank_families")
    names = [f["family"] for f in body["families"]]
    assert names == ["early", "equal", "job", "noisy", "pair"]
    job = body["families"][2]
    assert job["ranks"] == [0, 1, 2, 3] and job["runs"] == [f"job/rank{r}" for r in range(4)]
    assert job["maxSteps"] == [STEPS - EVERY] * 4 and job["numLayers"] == [5] * 4
    early = body["families"][0]
    assert early["maxSteps"] == [14, 6, 14]


def test_the_rank_fed_different_data_is_named_with_its_first_step(client: Client) -> None:
    body = get_json(client, "/rank_alerts?" + q(family="job"))
    assert body["named"] and body["threshold"] == rank_spread.DEFAULT_THRESHOLD
    assert [r["rank"] for r in body["departingRanks"]] == [ODD]
    summary = body["departingRanks"][0]
    assert summary["run"] == f"job/rank{ODD}" and summary["firstStep"] == DEPART
    assert body["alerts"] and {a["rank"] for a in body["alerts"]} == {ODD}
    first = body["alerts"][0]
    assert first["firstStep"] == DEPART
    # The first layer's input is 10x larger: its output's spread is ~10x the others'.
    std0 = next(a for a in body["alerts"] if a["layer"] == "0" and a["stat"] == "std")
    assert std0["kind"] == "activation" and std0["firstStep"] == DEPART
    assert std0["value"] / std0["median"] == pytest.approx(10, rel=0.3)
    assert std0["deviation"] > rank_spread.DEFAULT_THRESHOLD
    assert any(a["kind"] == "gradient" for a in body["alerts"])


def test_ranks_that_agree_have_no_alert(client: Client) -> None:
    for family in ("equal", "noisy"):
        body = get_json(client, "/rank_alerts?" + q(family=family))
        assert body["alerts"] == [] and body["departingRanks"] == [], (family, body["alerts"][:3])
    # Ranks fed different batches of one distribution: not one step of one rank passes the threshold
    # (the scale never drops below the family's usual spread, however close the ranks are by chance).
    once = get_json(client, "/rank_alerts?" + q(family="noisy", sustain=1))
    assert once["alerts"] == [], once["alerts"][:3]


def test_threshold_and_sustain_are_adjustable(client: Client) -> None:
    strict = get_json(client, "/rank_alerts?" + q(family="job", threshold=1e5))
    assert strict["totalAlerts"] < get_json(client, "/rank_alerts?" + q(family="job"))["totalAlerts"]
    never = get_json(client, "/rank_alerts?" + q(family="job", sustain=STEPS))  # longer than the departure
    assert never["totalAlerts"] == 0
    once = get_json(client, "/rank_alerts?" + q(family="job", sustain=1))
    assert once["totalAlerts"] >= get_json(client, "/rank_alerts?" + q(family="job"))["totalAlerts"]
    assert [(r["rank"], r["firstStep"]) for r in once["departingRanks"]] == [(ODD, DEPART)]


def test_two_ranks_give_the_spread_but_name_no_rank(client: Client) -> None:
    body = get_json(client, "/rank_alerts?" + q(family="pair"))
    assert not body["named"] and body["alerts"] == []
    spread = get_json(client, "/rank_spread?" + q(family="pair", kind="activation", stat="std"))
    assert all(v is None for row in spread["deviation"] for v in row)
    rel = np.array(spread["relativeSpread"], dtype=float)
    at = spread["steps"].index(DEPART)
    assert rel[0, at] > 1 and rel[0, 0] < 0.5  # the 10x rank opens the spread from DEPART on


def test_spread_matrices(client: Client) -> None:
    body = get_json(client, "/rank_spread?" + q(family="job", kind="activation", stat="mean"))
    assert [layer["name"] for layer in body["layers"]] == ["0", "1", "2", "3", "4"]
    assert body["steps"] == list(range(0, STEPS, EVERY)) and body["totalSteps"] == STEPS // EVERY
    low, med, high = (np.array(body[k], dtype=float) for k in ("low", "median", "high"))
    assert (low <= med + 1e-12).all() and (med <= high + 1e-12).all()
    dev = np.array(body["deviation"], dtype=float)
    at = body["steps"].index(DEPART)
    assert dev[0, at] > rank_spread.DEFAULT_THRESHOLD and dev[0, 0] < rank_spread.DEFAULT_THRESHOLD
    one = get_json(client, "/rank_layer?" + q(family="job", kind="activation", stat="mean", layer="0"))
    np.testing.assert_allclose(np.median(np.array(one["values"], dtype=float), axis=0), med[0], rtol=1e-6)
    thin = get_json(client, "/rank_spread?" + q(family="job", kind="gradient", stat="gradNorm", max_steps=3))
    assert (
        len(thin["steps"]) == 3
        and thin["steps"][-1] == STEPS - EVERY
        and thin["totalSteps"] == STEPS // EVERY
    )
    f32 = get_json(
        client, "/rank_spread?" + q(family="job", kind="gradient", stat="gradNorm", encoding="f32")
    )
    assert f32["median"]["shape"] == [5, STEPS // EVERY]


def test_each_ranks_line_of_one_layer(client: Client) -> None:
    body = get_json(client, "/rank_layer?" + q(family="job", kind="activation", stat="std", layer="0"))
    assert body["ranks"] == [0, 1, 2, 3] and body["steps"] == list(range(0, STEPS, EVERY))
    values = np.array(body["values"], dtype=float)
    at = body["steps"].index(DEPART)
    others = np.delete(values, ODD, axis=0)
    assert values[ODD, at] / others[:, at].mean() == pytest.approx(10, rel=0.3)
    assert values[ODD, 0] / others[:, 0].mean() == pytest.approx(1, rel=0.3)
    assert np.array(body["deviation"], dtype=float)[ODD, at] > rank_spread.DEFAULT_THRESHOLD


def test_a_rank_that_stopped_early(client: Client) -> None:
    body = get_json(client, "/rank_spread?" + q(family="early", kind="gradient", stat="gradNorm"))
    assert body["lastSteps"] == [14, 6, 14] and body["steps"] == list(range(0, STEPS, EVERY))
    dev = np.array(body["deviation"], dtype=float)
    assert np.isnan(dev[:, body["steps"].index(8)]).all()  # two ranks left: no rank can be named
    layer = get_json(client, "/rank_layer?" + q(family="early", kind="gradient", stat="gradNorm", layer="4"))
    assert layer["values"][1][-1] is None and layer["values"][0][-1] is not None
    alerts = get_json(client, "/rank_alerts?" + q(family="early"))
    assert alerts["alerts"] == [] and alerts["lastSteps"] == [14, 6, 14]


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/rank_spread?" + q(kind="activation", stat="mean"), 400, "'family'"),
        ("/rank_spread?" + q(family="job", kind="weights", stat="mean"), 400, "'kind'"),
        ("/rank_spread?" + q(family="job", kind="activation", stat="gradNorm"), 400, "'stat'"),
        ("/rank_spread?" + q(family="nope", kind="activation", stat="mean"), 404, "no rank family"),
        ("/rank_spread?" + q(family="lonely", kind="activation", stat="mean"), 404, "no rank family"),
        ("/rank_spread?" + q(family="job", kind="activation", stat="mean", max_steps=0), 400, "'max_steps'"),
        ("/rank_layer?" + q(family="job", kind="activation", stat="mean"), 400, "'layer'"),
        ("/rank_layer?" + q(family="job", kind="activation", stat="mean", layer="9"), 404, "layer '9'"),
        ("/rank_alerts", 400, "'family'"),
        ("/rank_alerts?" + q(family="job", threshold="nan"), 400, "'threshold'"),
        ("/rank_alerts?" + q(family="job", threshold="-1"), 400, "'threshold'"),
        ("/rank_alerts?" + q(family="job", threshold="inf"), 400, "'threshold'"),
        ("/rank_alerts?" + q(family="job", sustain="0"), 400, "'sustain'"),
        ("/rank_alerts?" + q(family="job", sustain="x"), 400, "'sustain'"),
    ],
)
def test_rank_routes_validate_their_parameters(client: Client, url: str, status: int, words: str) -> None:
    body = get_json(client, url, status=status)
    assert body["error"]["code"] == status and words in body["error"]["message"]


def test_the_reader_reads_each_rank_as_a_run(logdir: Path) -> None:
    reader = read(logdir)
    assert {f"job/rank{r}" for r in range(4)} <= set(reader.runs)
    assert reader.layers("job/rank2") == ["0", "1", "2", "3", "4"]


def test_departures_on_known_numbers() -> None:
    x = np.ones((5, 1, 6))
    x += np.arange(5)[:, None, None] * 0.01  # ranks a little apart
    x[3, 0, 2:] = 5.0  # rank 3 departs from step index 2 on
    x[1, 0, 4] = 2.0  # rank 1: a single step, not sustained
    s = rank_spread.spread(x)
    found = rank_spread.departures(s.deviation, threshold=8, sustain=2)
    assert found == [rank_spread.Departure(rank=3, layer=0, first=2, last=5, count=4)]
    assert rank_spread.departures(s.deviation, threshold=8, sustain=1)[0].rank == 1
    equal = rank_spread.spread(np.ones((4, 2, 3)))
    assert (equal.deviation == 0).all() and not rank_spread.departures(equal.deviation, 8, 1)
    assert rank_spread.median0(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])).tolist()[0] == 2.0


def test_the_reader_lists_families_and_alerts(logdir: Path) -> None:
    reader = read(logdir)
    assert reader.rank_families()["job"] == [f"job/rank{r}" for r in range(4)]
    alerts = reader.rank_alerts("job")
    ranks = set(alerts["rank"].tolist()) if hasattr(alerts, "columns") else set(alerts["rank"])
    assert ranks == {ODD} and int(min(alerts["firstStep"])) == DEPART
    assert len(reader.rank_alerts("equal")["rank"]) == 0
    with pytest.raises(ValueError, match="no rank family 'nope'"):
        reader.rank_alerts("nope")
    with pytest.raises(ValueError, match="threshold"):
        reader.rank_alerts("job", threshold=0)


def test_a_family_without_records_of_a_kind() -> None:
    """Ranks that recorded no gradients (grads=False): an empty stack, no spread, no departure."""
    empty = rank_spread.stack([0, 1, 2], ["a/rank0", "a/rank1", "a/rank2"], [None] * 3, ["gradNorm"])
    assert empty.values.shape == (3, 0, 0, 1) and empty.last_steps == (None, None, None)
    s = rank_spread.spread(empty.field("gradNorm"))
    assert s.median.shape == (0, 0) and rank_spread.departures(s.deviation, 8, 3) == []


def test_ranks_without_a_log_dir_share_torchruns_job_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SummaryWriter's default runs/<date>_<host> differs between ranks started a second apart or on other
    nodes; with torchrun's job id every rank picks runs/job_<id>, so the family stays together."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "7f3a")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        with InsightWriter(ranks="all") as writer:
            assert Path(writer.log_dir) == Path("runs") / "job_7f3a" / f"rank{rank}"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # a multi-node torchrun without --rdzv-id
    with pytest.warns(UserWarning, match="pass the same log_dir on every rank"):
        InsightWriter(ranks="all").close()


def test_ranks_with_other_steps_and_layers_align_by_name_and_step() -> None:
    from tb_plugin_insight import metadata
    from tb_plugin_insight.plugin import tables

    def table(layers: list[str], steps: list[int], value: float) -> tables.SeriesTable:
        data = tuple(
            metadata.PluginData(layer=name, order=i, module_type="Linear") for i, name in enumerate(layers)
        )
        shape = (len(layers), len(steps))
        values = np.full((*shape, 1), value)
        return tables.SeriesTable(
            data, np.array(steps), ("mean",), values, np.ones(shape, bool), np.zeros(shape)
        )

    found = rank_spread.stack(
        [0, 1, 2],
        ["j/rank0", "j/rank1", "j/rank2"],
        [table(["a", "b"], [0, 2, 4], 1.0), table(["a"], [0, 3], 2.0), table(["b", "a"], [0, 2], 3.0)],
        ["mean"],
    )
    assert found.layers == ("a", "b") and found.steps.tolist() == [0, 2, 3, 4]
    assert found.last_steps == (4, 3, 2)
    a = found.field("mean")[:, 0, :]
    np.testing.assert_array_equal(a, [[1, 1, np.nan, 1], [2, np.nan, 2, np.nan], [3, 3, np.nan, np.nan]])
    s = rank_spread.spread(found.field("mean"))
    assert s.count[0].tolist() == [3, 2, 1, 1] and np.isnan(s.deviation[:, 0, 1:]).all()
