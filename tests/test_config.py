"""Typed, frozen config: reference defaults per dataset, strict overrides."""

import dataclasses

import pytest

from config import get_config, override, parse_set_pairs
from utils.errors import ConfigError


def test_presets_carry_reference_values():
    mosi, mosei, sims = get_config("mosi"), get_config("mosei"), get_config("sims")
    assert (mosi.batch_size, mosei.batch_size, sims.batch_size) == (32, 16, 32)
    assert (mosi.learning_rate_bert, mosei.learning_rate_bert, sims.learning_rate_bert) == (5e-5, 2e-5, 2e-5)
    assert (mosi.d_model, mosei.d_model, sims.d_model) == (128, 128, 32)
    assert (mosi.fusion_layers, mosei.fusion_layers, sims.fusion_layers) == (3, 2, 4)
    assert (sims.loss_attra_weight, sims.loss_recon_weight) == (0.5, 0.5)
    assert mosi.missing_seeds == (111, 1111, 11111) and mosi.early_stop == 8 and mosi.batches_per_step == 4
    assert sims.sweep_rates == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5) and len(mosi.sweep_rates) == 11
    assert mosi.key_eval == "Loss" and mosi.max_epochs is None


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_config("mosi").batch_size = 3


def test_overrides_are_typed_and_unknown_keys_refused():
    cfg = get_config("mosi", d_model="64", mpu_share="false", sweep_rates="0.0 0.5", max_epochs="none")
    assert cfg.d_model == 64 and cfg.mpu_share is False and cfg.sweep_rates == (0.0, 0.5) and cfg.max_epochs is None
    with pytest.raises(ConfigError, match="unknown config key"):
        get_config("mosi", not_a_key=1)
    with pytest.raises(ConfigError, match="expected int"):
        get_config("mosi", batch_size="many")
    with pytest.raises(ConfigError, match="unknown dataset"):
        get_config("cmu-mosi")
    with pytest.raises(ConfigError, match="divisible"):
        override(get_config("mosi"), {"heads": 3})


def test_set_pairs_parse():
    assert parse_set_pairs(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError):
        parse_set_pairs(["novalue"])


def test_variant_names():
    assert get_config("mosi").variant == "emt-dlfr"
    assert get_config("mosi", use_reconstruction=False).variant == "emt-hlfr"
    assert get_config("mosi", use_attraction=False).variant == "emt-llfr"
    assert get_config("mosi", use_attraction=False, use_reconstruction=False).variant == "emt"


def test_text_hidden_size_is_unset_by_default_and_validated():
    from utils.results import config_fingerprint

    mosi = get_config("mosi")
    assert mosi.text_hidden_size is None
    assert get_config("mosi", text_hidden_size="768").text_hidden_size == 768
    assert get_config("mosi", text_hidden_size="none").text_hidden_size is None
    with pytest.raises(ConfigError, match="'text_hidden_size' must be a positive BERT hidden size or none, got 0"):
        get_config("mosi", text_hidden_size="0")
    with pytest.raises(ConfigError, match="'text_hidden_size': expected int"):
        get_config("mosi", text_hidden_size="wide")
    # Pinning only refuses encoders; it does not change what is computed, so results stay valid.
    assert config_fingerprint(get_config("mosi", text_hidden_size=768)) == config_fingerprint(mosi)


def test_every_variant_and_fusion_has_its_own_results_folder():
    import run
    from pathlib import Path

    names = {
        (True, True, "emt"): "emt-dlfr", (False, True, "emt"): "emt-llfr", (True, False, "emt"): "emt-hlfr",
        (False, False, "emt"): "emt", (True, True, "ooll"): "emt-dlfr-ooll", (False, False, "oall"): "emt-oall",
    }
    for (attraction, reconstruction, fusion), name in names.items():
        cfg = get_config("mosi", use_attraction=attraction, use_reconstruction=reconstruction, fusion=fusion)
        assert cfg.run_name == name
        assert run.results_dir(None, cfg) == Path("results") / "mosi" / name
        assert run.results_dir("out/{dataset}/{variant}/run_once", cfg) == Path("out") / "mosi" / name / "run_once"
    assert len(set(names.values())) == len(names)


def test_the_references_name_for_gradient_accumulation_is_accepted():
    assert get_config("mosi", update_epochs="2").batches_per_step == 2
    assert get_config("mosi", batches_per_step=3).batches_per_step == 3
    with pytest.raises(ConfigError, match="'update_epochs' and 'batches_per_step' name the same setting"):
        get_config("mosi", update_epochs=2, batches_per_step=3)


def test_each_rule_is_checked_when_the_config_is_built():
    with pytest.raises(ConfigError, match="missing rate 1.5 is outside"):
        get_config("mosi", sweep_rates="0.0 1.5")
    with pytest.raises(ConfigError, match="missing-mask protocol"):
        get_config("mosi", train_missing_protocol="random")
    with pytest.raises(ConfigError, match="key_eval 'Acc' is not a validation metric"):
        get_config("mosi", key_eval="Acc")
    assert get_config("sims", key_eval="Mult_acc_3").key_eval == "Mult_acc_3"
    with pytest.raises(ConfigError, match="key_eval 'Mult_acc_3'"):
        get_config("mosi", key_eval="Mult_acc_3")
    assert get_config("mosi", "tfr_net", key_eval="Loss(pred_m)").key_eval == "Loss(pred_m)"


def test_every_repeated_set_flag_counts():
    import run

    args = run.build_parser().parse_args(["--dataset", "mosi", "--set", "batch_size=8", "--set", "early_stop=3",
                                          "heads=2"])
    assert args.set == ["batch_size=8", "early_stop=3", "heads=2"]
    cfg = run.config_from_args(args)
    assert (cfg.batch_size, cfg.early_stop, cfg.heads) == (8, 3, 2)
