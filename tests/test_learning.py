"""Learning is real: a short run on the tiny preset lowers the loss and fits the training labels."""

import numpy as np
import pytest

from config import get_config
from data.load_data import build_loaders, load_mmsa
from trains.experiment import build_datasets, model_for
from trains.trainer import Trainer
from utils.seed import setup_seed

EPOCHS = 30


@pytest.mark.slow
def test_short_run_fits_the_training_labels(tiny_root):
    # one step per batch and higher learning rates, so that 30 tiny epochs are enough to fit 32 clips
    cfg = get_config("tiny", batches_per_step=1, learning_rate_other=3e-3, learning_rate_audio=3e-3,
                     learning_rate_video=3e-3, learning_rate_bert=1e-3)
    path = tiny_root / cfg.data_file
    datasets = build_datasets(cfg, load_mmsa(path, label_range=cfg.label_range), path, (0.0, 0.0, 0.0))
    setup_seed(0)
    trainer = Trainer(cfg, model_for(cfg, datasets), progress=False)
    loaders = build_loaders(datasets, cfg.batch_size, seed=0)
    labels = np.array([datasets["train"][i]["labels"]["M"].item() for i in range(len(datasets["train"]))])
    constant_mae = np.abs(labels - labels.mean()).mean()  # the best a model ignoring its inputs can do

    history = [trainer.train_epoch(loaders["train"], epoch) for epoch in range(1, EPOCHS + 1)]
    first, last = history[0], history[-1]
    assert last["Loss"] < first["Loss"] - 1.0
    assert last["MAE"] < 0.5 * constant_mae
    assert last["Corr"] > 0.8
