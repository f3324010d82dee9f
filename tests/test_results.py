"""Result files of a sweep (utils/results.py) byte for byte, from cells with hand-checkable numbers.

Seeds 1, 2, 3. At rate 0.0: MAE 0.70/0.80/0.95 (x100: 70, 80, 95; mean 81.67, population std 10.27),
Corr 0.50/0.40/0.45 (mean 45.00, std 4.08). At rate 0.5: MAE 1.00/1.10/1.31 (mean 113.67, std 12.92),
Corr 0.21/0.30/0.10 (mean 20.33, std 8.18). AUILC over (0, 0.5): MAE (81.67 + 113.67) / 2 * 0.5 = 48.8,
Corr (45 + 20.33) / 2 * 0.5 = 16.3. One per-modality cell (0.5, 0, 0) with one seed stays out of the AUILC.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from config import get_config
from utils.errors import ConfigError, UserError
from utils.results import (
    aggregate,
    cell_path,
    config_fingerprint,
    merge_cells,
    model_file,
    predictions_dir,
    prepare_out_dir,
    rate_tag,
    read_cell,
    read_cells,
    stored_config,
    work_dir,
    write_cell,
)

SEEDS = (1, 2, 3)
CELLS = {
    0.0: {"MAE": (0.70, 0.80, 0.95), "Corr": (0.50, 0.40, 0.45)},
    0.5: {"MAE": (1.00, 1.10, 1.31), "Corr": (0.21, 0.30, 0.10)},
}
GRID = [(0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, 0.0, 0.0), (1.0, 1.0, 1.0)]  # rate 1.0 has no finished cell


@pytest.fixture
def sweep(tmp_path):
    cfg = get_config("tiny")
    fingerprint = prepare_out_dir(tmp_path, cfg)
    for rate, metrics in CELLS.items():
        for i, seed in enumerate(SEEDS):
            write_cell(tmp_path, {"rates": [rate] * 3, "seed": seed, "fingerprint": fingerprint,
                                  "test": {name: values[i] for name, values in metrics.items()}})
    write_cell(tmp_path, {"rates": [0.5, 0.0, 0.0], "seed": 1, "fingerprint": fingerprint,
                          "test": {"MAE": 0.9, "Corr": 0.3}})
    summary = aggregate(tmp_path, cfg, GRID, SEEDS, fingerprint)
    return tmp_path, summary, fingerprint


def test_per_rate_csv_is_mean_and_population_std_x100(sweep):
    out, _, _ = sweep
    assert (out / "normals" / "tiny-regression-0.0.csv").read_text() == (
        'Model,Corr,MAE\nemt-dlfr,"(45.00, 4.08)","(81.67, 10.27)"\n'
    )
    assert (out / "normals" / "tiny-regression-0.5.csv").read_text() == (
        'Model,Corr,MAE\nemt-dlfr,"(20.33, 8.18)","(113.67, 12.92)"\n'
    )
    assert (out / "normals" / "tiny-regression-0.5-0-0.csv").read_text() == (
        'Model,Corr,MAE\nemt-dlfr,"(30.00, 0.00)","(90.00, 0.00)"\n'
    )
    assert not (out / "normals" / "tiny-regression-1.0.csv").exists()


def test_detail_csv_has_seed_rows_then_mean_max_and_min_with_their_seeds(sweep):
    out, _, _ = sweep
    assert (out / "normals" / "tiny-regression-0.5-detail.csv").read_text() == (
        "Model,Seed,Corr,MAE\n"
        "emt-dlfr,1,21.0,100.0\n"
        "emt-dlfr,2,30.0,110.0\n"
        "emt-dlfr,3,10.0,131.0\n"
        'emt-dlfr,<mean/std>,"(20.33, 8.18)","(113.67, 12.92)"\n'
        'emt-dlfr,<max/seed>,"(30.00, 2)","(131.00, 3)"\n'
        'emt-dlfr,<min/seed>,"(10.00, 3)","(100.00, 1)"\n'
    )


def test_aggregated_csv_has_a_row_per_rate_and_the_auilc_row(sweep):
    out, _, _ = sweep
    assert (out / "normals" / "tiny-regression-aggregated.csv").read_text() == (
        "rate,Corr,MAE,Corr_std,MAE_std\n"
        "0.0,45.0,81.67,4.08,10.27\n"
        "0.5,20.33,113.67,8.18,12.92\n"
        "0.5-0-0,30.0,90.0,0.0,0.0\n"
        "AUC,16.3,48.8,,\n"
    )


def test_results_json_holds_the_same_numbers_unrounded(sweep):
    out, summary, fingerprint = sweep
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(summary))
    assert (summary["dataset"], summary["variant"], summary["fingerprint"]) == ("tiny", "emt-dlfr", fingerprint)
    assert list(summary["rates"]) == ["0.0", "0.5", "0.5-0-0"]
    half = summary["rates"]["0.5"]
    assert half["rates"] == [0.5, 0.5, 0.5] and half["seeds"] == [1, 2, 3]
    assert half["mean"]["MAE"] == pytest.approx(113.666667, abs=1e-6)
    assert half["std"]["MAE"] == pytest.approx(12.918548, abs=1e-6)
    assert half["per_seed"][3] == pytest.approx({"MAE": 131.0, "Corr": 10.0})
    assert summary["auilc"] == {"MAE": 48.8, "Corr": 16.3}  # the reference's AUC row, 1 decimal


def test_no_auilc_without_the_complete_data_point(tmp_path):
    cfg = get_config("tiny")
    fingerprint = prepare_out_dir(tmp_path, cfg)
    for rate in (0.2, 0.5):
        write_cell(tmp_path, {"rates": [rate] * 3, "seed": 1, "fingerprint": fingerprint, "test": {"MAE": rate}})
    summary = aggregate(tmp_path, cfg, [(0.2,) * 3, (0.5,) * 3], [1], fingerprint)
    assert "auilc" not in summary
    assert (tmp_path / "normals" / "tiny-regression-aggregated.csv").read_text().splitlines()[-1] == "0.5,50.0,0.0"
    single = tmp_path / "single"
    fingerprint = prepare_out_dir(single, cfg)
    write_cell(single, {"rates": [0.0] * 3, "seed": 1, "fingerprint": fingerprint, "test": {"MAE": 0.5}})
    assert "auilc" not in aggregate(single, cfg, [(0.0,) * 3], [1], fingerprint)  # one point: no area


def test_no_cells_no_csv(tmp_path):
    cfg = get_config("tiny")
    fingerprint = prepare_out_dir(tmp_path, cfg)
    summary = aggregate(tmp_path, cfg, [(0.0,) * 3], [1], fingerprint)
    assert summary["rates"] == {} and not (tmp_path / "normals").exists()
    assert json.loads((tmp_path / "results.json").read_text())["rates"] == {}


def test_rate_tags_and_cell_paths(tmp_path):
    assert rate_tag((0.5, 0.5, 0.5)) == "0.5"
    assert rate_tag((0.0, 0.0, 0.0)) == "0.0"
    assert rate_tag((0.25, 0.25, 0.25)) == "0.25"
    assert rate_tag((0.1, 0.5, 0.0)) == "0.1-0.5-0"
    assert rate_tag((0.5, 0.5, 0.0)) == "0.5-0.5-0"
    assert cell_path(tmp_path, (0.3, 0.3, 0.3), 7) == tmp_path / "cells" / "mr0.3" / "seed7.json"


def test_cells_are_read_back_only_for_the_same_fingerprint(tmp_path):
    record = {"rates": [0.1, 0.1, 0.1], "seed": 4, "fingerprint": "abc", "test": {"MAE": 1.0}}
    path = write_cell(tmp_path, record)
    assert path == tmp_path / "cells" / "mr0.1" / "seed4.json"
    assert read_cell(tmp_path, (0.1, 0.1, 0.1), 4, "abc") == record
    assert read_cell(tmp_path, (0.1, 0.1, 0.1), 4, "other") is None
    assert read_cell(tmp_path, (0.1, 0.1, 0.1), 5, "abc") is None


def test_fingerprint_ignores_runtime_fields_only():
    cfg = get_config("tiny")
    fingerprint = config_fingerprint(cfg)
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    for runtime in ({"device": "cuda"}, {"num_workers": 3}, {"checkpoint_every_epoch": not cfg.checkpoint_every_epoch},
                    {"text_hidden_size": 64}, {"fast_path": not cfg.fast_path}):
        assert config_fingerprint(dataclasses.replace(cfg, **runtime)) == fingerprint, runtime
    assert config_fingerprint(dataclasses.replace(cfg, learning_rate_bert=1e-3)) != fingerprint
    assert config_fingerprint(dataclasses.replace(cfg, missing_seeds=(1, 2, 3))) != fingerprint


def test_out_dir_is_pinned_to_its_config(tmp_path):
    cfg = get_config("tiny")
    out = tmp_path / "a" / "b"
    fingerprint = prepare_out_dir(out, cfg)
    saved = json.loads((out / "config.json").read_text())
    assert saved["fingerprint"] == fingerprint and saved["config"] == json.loads(json.dumps(cfg.to_dict()))
    assert not (out / ".write-test").exists()
    assert prepare_out_dir(out, dataclasses.replace(cfg, device="cuda")) == fingerprint
    write_cell(out, {"rates": [0.0] * 3, "seed": 1, "fingerprint": fingerprint, "test": {"MAE": 0.5}})
    with pytest.raises(ConfigError, match=r"holds results of another config \(differs in: early_stop, max_epochs\)"):
        prepare_out_dir(out, dataclasses.replace(cfg, max_epochs=99, early_stop=99))
    (out / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"config.json is not valid JSON; remove it or use another --out"):
        prepare_out_dir(out, cfg)


def test_unwritable_out_dir_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"output directory .*file/results cannot be written"):
        prepare_out_dir(blocker / "results", get_config("tiny"))


def test_a_rate_without_cells_in_the_middle_of_the_grid_is_skipped(tmp_path):
    cfg = get_config("tiny")
    fingerprint = prepare_out_dir(tmp_path, cfg)
    for rate in (0.0, 0.5):
        write_cell(tmp_path, {"rates": [rate] * 3, "seed": 1, "fingerprint": fingerprint, "test": {"MAE": rate}})
    summary = aggregate(tmp_path, cfg, [(0.0,) * 3, (0.3,) * 3, (0.5,) * 3], [1], fingerprint)
    assert list(summary["rates"]) == ["0.0", "0.5"]
    assert (tmp_path / "normals" / "tiny-regression-0.5.csv").exists()


def test_results_json_names_the_model_and_run_and_the_auilc_grid(sweep):
    out, summary, _ = sweep
    assert (summary["model"], summary["name"]) == ("emt-dlfr", "emt-dlfr")
    assert summary["auilc_rates"] == [0.0, 0.5]
    # the trapezoid over the two rates' x100 means, unrounded: 0.5 * (mean(0.0) + mean(0.5)) / 2 ... / 1.0
    mae = [sum(CELLS[r]["MAE"]) / 3 * 100 for r in (0.0, 0.5)]
    assert summary["auilc_unrounded"]["MAE"] == pytest.approx(0.5 * (mae[0] + mae[1]) / 2, rel=1e-12)


def test_fingerprint_is_the_sha1_of_the_sorted_json_of_the_computation_fields():
    """Results folders store it, so it must not depend on the order the config's fields are listed in."""
    import hashlib

    from config import RUNTIME_FIELDS

    cfg = get_config("tiny")
    fields = {k: v for k, v in sorted(cfg.to_dict().items(), reverse=True) if k not in RUNTIME_FIELDS}
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    assert config_fingerprint(cfg) == hashlib.sha1(blob).hexdigest()[:16]


def test_out_dir_messages_and_a_training_checkpoint_counts_as_results(tmp_path):
    cfg = get_config("tiny")
    out = tmp_path / "out"
    fingerprint = prepare_out_dir(out, cfg)
    assert prepare_out_dir(out, cfg) == fingerprint  # the same config again, nothing there yet
    assert json.loads((out / "config.json").read_text())["model"] == "emt-dlfr"
    other = dataclasses.replace(cfg, max_epochs=99)
    state = work_dir(out, (0.3,) * 3, 1) / "train_state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"^{out} holds results of another config \(differs in: max_epochs\); "
                                          r"use another --out, or remove the directory to start over$"):
        prepare_out_dir(out, other)
    assert prepare_out_dir(out, cfg) == fingerprint  # its own config resumes
    mult = get_config("tiny", model="mult")
    with pytest.raises(ConfigError, match=rf"^{out} holds results of model emt-dlfr, not mult; use another --out "
                                          r"\(the default is results/<dataset>/<model>\)$"):
        prepare_out_dir(out, mult)
    saved = json.loads((out / "config.json").read_text())
    del saved["model"]  # a folder written before --model existed is EMT-DLFR's
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="holds results of model emt-dlfr, not mult"):
        prepare_out_dir(out, mult)
    assert prepare_out_dir(out, cfg) == fingerprint
    theirs = tmp_path / "theirs"
    prepare_out_dir(theirs, mult)
    state = work_dir(theirs, (0.0,) * 3, 1) / "train_state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"^{theirs} holds results of model mult, not emt-dlfr; "):
        prepare_out_dir(theirs, cfg)
    saved["fingerprint"] = "0" * 16  # same config, another fingerprint: nothing to name
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"\(differs in: unknown\)"):
        prepare_out_dir(out, cfg)
    del saved["config"]
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"\(differs in: [a-z_, ]*max_epochs"):
        prepare_out_dir(out, cfg)


def test_unwritable_out_dir_names_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=rf"^output directory {blocker}/results cannot be written \(Not a directory\); "
                                          r"choose another --out$"):
        prepare_out_dir(blocker / "results", get_config("tiny"))


def test_where_a_cells_model_predictions_and_training_state_go(tmp_path):
    cfg = get_config("tiny")
    assert model_file(tmp_path, cfg, (0.3,) * 3, 2) == tmp_path / "models" / "emt-dlfr-tiny-regression-mr0.3-2.pth"
    assert model_file(str(tmp_path), cfg, (0.5, 0.0, 0.0), 1) == tmp_path / "models" / (
        "emt-dlfr-tiny-regression-mr0.5-0-0-1.pth")
    assert predictions_dir(str(tmp_path), (0.3,) * 3, 2) == tmp_path / "predictions" / "mr0.3" / "seed2"
    assert work_dir(str(tmp_path), (0.0, 0.1, 0.0), 7) == tmp_path / "work" / "mr0-0.1-0" / "seed7"


def test_stored_config_reads_what_prepare_out_dir_wrote(tmp_path):
    cfg = get_config("tiny", model="mult")
    fingerprint = prepare_out_dir(tmp_path, cfg)
    assert stored_config(str(tmp_path)) == (json.loads(json.dumps(cfg.to_dict())), fingerprint, "mult")
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["model"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert stored_config(tmp_path)[2] == "emt-dlfr"  # written before --model existed
    for broken in ("{not json", json.dumps({"config": {}}), json.dumps([1])):
        (tmp_path / "config.json").write_text(broken)
        with pytest.raises(ConfigError, match=rf"^{tmp_path}/config.json is not a config.json written by run.py$"):
            stored_config(tmp_path)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/x is not a results directory of run.py \(no config.json\)$"):
        stored_config(tmp_path / "x")


def test_merging_shards_copies_their_new_cells_once(tmp_path):
    cfg = get_config("tiny")
    shards = [tmp_path / "s0", tmp_path / "s1"]
    fingerprint = prepare_out_dir(shards[0], cfg)
    prepare_out_dir(shards[1], cfg)
    for i, shard in enumerate(shards):
        for seed in (i, 10):
            write_cell(shard, {"rates": [0.0] * 3, "seed": seed, "fingerprint": fingerprint, "test": {"MAE": i}})
    dest = tmp_path / "merged" / "all"
    assert merge_cells(str(dest), [str(s) for s in shards]) == 3  # seed 10 is in both: the first shard's is kept
    assert json.loads((dest / "config.json").read_text()) == json.loads((shards[0] / "config.json").read_text())
    assert [read_cell(dest, (0.0,) * 3, s, fingerprint)["test"]["MAE"] for s in (0, 1, 10)] == [0, 1, 0]
    assert merge_cells(dest, shards) == 0  # nothing new the second time
    made_before = tmp_path / "made-before"
    made_before.mkdir()  # an empty folder made beforehand is fine too
    assert merge_cells(made_before, shards) == 3
    other = tmp_path / "other"
    prepare_out_dir(other, dataclasses.replace(cfg, max_epochs=99))
    with pytest.raises(ConfigError, match=rf"^{other} was made with another config than {dest}; they cannot be merged$"):
        merge_cells(dest, [other])
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'nothing'} is not a results directory \(no config.json\)$"):
        merge_cells(dest, [tmp_path / "nothing"])


def test_a_later_run_at_other_rates_keeps_the_folders_rates_and_auilc(sweep):
    """A --diff-missing or single-rate run into a sweep's folder aggregates every rate of the folder that has
    cells of its seeds: the sweep's rates and AUILC stay in results.json and the aggregated CSV."""
    out, before, fingerprint = sweep
    cfg = get_config("tiny")
    for seed in SEEDS:
        write_cell(out, {"rates": [0.0, 0.3, 0.0], "seed": seed, "fingerprint": fingerprint, "test": {"MAE": 0.8, "Corr": 0.4}})
    write_cell(out, {"rates": [0.7] * 3, "seed": 1, "fingerprint": "another config", "test": {"MAE": 9.0, "Corr": 0.0}})
    write_cell(out, {"rates": [0.9] * 3, "seed": 99, "fingerprint": fingerprint, "test": {"MAE": 9.0, "Corr": 0.0}})
    after = aggregate(out, cfg, [(0.0, 0.3, 0.0)], SEEDS, fingerprint)
    assert list(after["rates"]) == ["0.0", "0.5", "0-0.3-0", "0.5-0-0"]  # equal rates first, then per modality
    assert after["auilc"] == before["auilc"] and after["rates"]["0.5"] == before["rates"]["0.5"]
    assert after["rates"]["0-0.3-0"]["seeds"] == [1, 2, 3]
    rows = (out / "normals" / "tiny-regression-aggregated.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0.0", "0.5", "0-0.3-0", "0.5-0-0", "AUC"]


def test_a_file_in_the_cells_folder_that_is_not_a_cell_is_named(sweep):
    out, _, fingerprint = sweep
    broken = out / "cells" / "mr0.3" / "seed1.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    with pytest.raises(UserError, match=rf"^{broken} is not a cell file written by run.py"):
        aggregate(out, get_config("tiny"), [(0.0,) * 3], SEEDS, fingerprint)


def test_read_cells_gives_the_folders_records_by_rates(sweep):
    out, _, fingerprint = sweep
    write_cell(out, {"rates": [0.7] * 3, "seed": 1, "fingerprint": "another config", "test": {"MAE": 9.0}})
    cells = read_cells(out)  # the config pinned in config.json
    assert read_cells(str(out), fingerprint) == cells
    assert sorted(cells) == [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (0.5, 0.5, 0.5)]
    assert [r["seed"] for r in cells[(0.5, 0.5, 0.5)]] == [1, 2, 3]
    assert cells[(0.5, 0.0, 0.0)] == [{"rates": [0.5, 0.0, 0.0], "seed": 1, "fingerprint": fingerprint,
                                       "test": {"MAE": 0.9, "Corr": 0.3}}]
    assert list(read_cells(out, "another config")) == [(0.7, 0.7, 0.7)]
