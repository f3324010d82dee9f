"""Same seed, same run: ``--faithful-rng`` reproduces the authors' whole CPU training run epoch by epoch.

The reference numbers (tests/fixtures/reference_trajectory.json) come from one run of the authors' code on the
setting of tests/trajectory_recipe.py: every dropout 0, so the only randomness is the initialisation and the
batch order. With ``--faithful-rng --set fast_path=false`` this project's run must take the same number of
epochs, pick the same best epoch, give each epoch's validation loss within 1e-4 relative (their training loss
to their 4 printed decimals) and the same test metrics to 4 decimals, up to one unit in the last place.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import run
from config import get_config
from tests import trajectory_recipe as recipe
from utils.seed import setup_seed

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "reference_trajectory.json").read_text())
#: Relative tolerance of each epoch's validation losses (the total, and the incomplete view's task loss).
VALID_LOSS_RTOL = 1e-4
VALID_LOSSES = ("Loss", "Loss(pred_m)")
#: Printed decimals of the reference's metrics and training loss, and the slack of one unit in the last place.
DECIMALS = 4
LAST_PLACE = 10.0 ** -DECIMALS
#: Relative tolerance of the per-tensor sums and norms of the initial weights (float64 sums of float32 tensors).
INIT_RTOL = 1e-9
#: The reference's sinusoidal positional table (``learnable_pos_emb=False``): a buffer, never drawn.
SINUSOID_TABLE = "Model.fusion.pos_embed.pe"


def _same_to_printed_decimals(ours: float, theirs: float) -> bool:
    return abs(round(ours, DECIMALS) - round(theirs, DECIMALS)) <= LAST_PLACE * 1.01


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """The recipe's data root and BERT folder, written once."""
    base = tmp_path_factory.mktemp("trajectory")
    recipe.write_data(base / "data")
    return base / "data", recipe.write_bert(base / "bert")


def test_fixture_was_made_from_this_recipe():
    assert FIXTURE["recipe"] == json.loads(json.dumps(recipe.recipe())), (
        "tests/trajectory_recipe.py changed: rerun the authors' code on the new setting and refresh the fixture"
    )


def test_faithful_initial_weights_are_the_authors(setting):
    from models.reference_init import reference_initial_state
    from models.text_encoder import load_text_encoder

    _, bert = setting
    cfg = get_config("tiny", **recipe.CONFIG, bert=str(bert), faithful_rng=True)
    setup_seed(FIXTURE["recipe"]["seed"])
    state = reference_initial_state(cfg, load_text_encoder(cfg.bert), audio_dim=5, vision_dim=6)
    expected = FIXTURE["initial_weights"]
    drawn = {k: v for k, v in state.items() if v.is_floating_point() and not k.startswith("Model.text_model.")}
    assert sorted(set(expected) - set(drawn)) == [SINUSOID_TABLE]  # a fixed buffer: nothing drawn, not loaded
    assert set(drawn) <= set(expected)
    for key, tensor in drawn.items():
        total, norm = expected[key]
        tensor = tensor.double()
        assert math.isclose(float(tensor.sum()), total, rel_tol=INIT_RTOL, abs_tol=1e-12), key
        assert math.isclose(float(tensor.norm()), norm, rel_tol=INIT_RTOL), key


@pytest.mark.slow
def test_faithful_run_equals_the_authors_run_epoch_by_epoch(setting, tmp_path):
    data_root, bert = setting
    out = tmp_path / "out"
    argv = [
        "--dataset", "tiny", "--data-root", str(data_root), "--bert", str(bert),
        "--missing-rate", str(recipe.MISSING_RATE), "--seeds", str(recipe.SEED), "--out", str(out), "--no-progress",
        "--faithful-rng", "--set", *recipe.set_arguments(), "fast_path=false",
    ]
    assert run.main(argv) == 0
    (cell,) = out.glob("cells/*/*.json")
    record = json.loads(cell.read_text())

    assert (record["epochs"], record["best_epoch"]) == (FIXTURE["epochs"], FIXTURE["best_epoch"])
    assert [e["epoch"] for e in record["history"]] == list(range(1, FIXTURE["epochs"] + 1))
    for ours, theirs in zip(record["history"], FIXTURE["history"]):
        epoch = theirs["epoch"]
        assert _same_to_printed_decimals(ours["train"]["Loss"], theirs["train_loss"]), epoch
        for key, value in theirs["valid"].items():
            if key in VALID_LOSSES:  # unrounded in the reference's results: compared relatively
                assert math.isclose(ours["valid"][key], value, rel_tol=VALID_LOSS_RTOL), (epoch, key)
            else:
                assert _same_to_printed_decimals(ours["valid"][key], value), (epoch, key)
    assert set(record["test"]) == set(FIXTURE["test"])
    for key, value in FIXTURE["test"].items():
        assert _same_to_printed_decimals(record["test"][key], value), key


def test_faithful_loaders_draw_from_the_global_generator_once_per_pass(setting):
    """Each pass over a faithful loader draws from the global generator exactly as one DataLoader iteration:
    the trainer must not start a second, discarded iteration (which tqdm.auto would, given the loader)."""
    from data.load_data import build_loaders, load_mmsa
    from trains.experiment import build_datasets, model_for
    from trains.trainer import Trainer

    data_root, bert = setting
    cfg = get_config("tiny", **recipe.CONFIG, bert=str(bert), faithful_rng=True, fast_path=False)
    path = data_root / cfg.data_file
    datasets = build_datasets(cfg, load_mmsa(path, label_range=cfg.label_range), path, (0.3, 0.3, 0.3))
    setup_seed(0)
    trainer = Trainer(cfg, model_for(cfg, datasets), progress=False)
    loaders = build_loaders(datasets, cfg.batch_size, seed=0, global_rng=True)
    assert all(loader.generator is None for loader in loaders.values())
    start = torch.get_rng_state()
    trainer.train_epoch(loaders["train"], 1)
    trainer.evaluate(loaders["valid"])
    after_passes = torch.get_rng_state()
    torch.set_rng_state(start)
    for split in ("train", "valid"):
        for _ in loaders[split]:
            pass
    assert torch.equal(torch.get_rng_state(), after_passes)
