"""Resolving the feature file: --data-path, --data-root, $MMSA_DATA_ROOT, with and without Datasets/."""

import pytest

from config import get_config
from data.paths import DATA_ROOT_ENV, is_official_layout, resolve_data_path
from tests.data_fixtures import isolated_data_state  # noqa: F401 (fixture)
from utils.errors import ConfigError, DataError

MOSI = get_config("mosi")
SIMS = get_config("sims")


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_readme_layout(tmp_path):
    expected = touch(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl")
    assert resolve_data_path(MOSI, data_root=tmp_path) == expected
    assert is_official_layout(expected, MOSI) is True


def test_reference_layout_with_datasets_level(tmp_path):
    expected = touch(tmp_path / "Datasets" / "MOSI" / "Processed" / "unaligned_50.pkl")
    assert resolve_data_path(MOSI, data_root=str(tmp_path)) == expected
    assert is_official_layout(expected, MOSI) is True


def test_readme_layout_wins_when_both_exist(tmp_path):
    readme = touch(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl")
    touch(tmp_path / "Datasets" / "MOSI" / "Processed" / "unaligned_50.pkl")
    assert resolve_data_path(MOSI, data_root=tmp_path) == readme


def test_environment_variable(tmp_path, monkeypatch):
    expected = touch(tmp_path / "Datasets" / "SIMS" / "Processed" / "unaligned_39.pkl")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert resolve_data_path(SIMS) == expected


def test_data_root_beats_environment_variable(tmp_path, monkeypatch):
    env_root, flag_root = tmp_path / "env", tmp_path / "flag"
    touch(env_root / "MOSI" / "Processed" / "unaligned_50.pkl")
    expected = touch(flag_root / "MOSI" / "Processed" / "unaligned_50.pkl")
    monkeypatch.setenv(DATA_ROOT_ENV, str(env_root))
    assert resolve_data_path(MOSI, data_root=flag_root) == expected


def test_normalized_sims_file(tmp_path):
    touch(tmp_path / "SIMS" / "Processed" / "unaligned_39.pkl")
    expected = touch(tmp_path / "SIMS" / "Processed" / "unaligned_39_normalized.pkl")
    cfg = get_config("sims", use_normalized_data=True)
    assert resolve_data_path(cfg, data_root=tmp_path) == expected
    assert is_official_layout(expected, cfg) is True
    assert is_official_layout(expected, SIMS) is False


def test_normalized_data_without_a_normalized_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="only SIMS"):
        resolve_data_path(get_config("mosi", use_normalized_data=True), data_root=tmp_path)


def test_data_path_wins_and_is_not_official(tmp_path, monkeypatch):
    touch(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl")
    custom = touch(tmp_path / "elsewhere" / "mine.pkl")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert resolve_data_path(MOSI, data_root=tmp_path, data_path=custom) == custom
    assert is_official_layout(custom, MOSI) is False
    assert is_official_layout(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl", get_config("mosei")) is False


def test_missing_data_path_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"--data-path .*absent\.pkl does not exist"):
        resolve_data_path(MOSI, data_path=tmp_path / "absent.pkl")


def test_error_lists_every_path_looked_for(tmp_path):
    with pytest.raises(DataError) as info:
        resolve_data_path(MOSI, data_root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl") in message
    assert str(tmp_path / "Datasets" / "MOSI" / "Processed" / "unaligned_50.pkl") in message
    for hint in ("--data-root", DATA_ROOT_ENV, "--data-path"):
        assert hint in message


def test_error_names_the_environment_variable_when_it_was_used(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    with pytest.raises(DataError, match=rf"under \${DATA_ROOT_ENV}="):
        resolve_data_path(SIMS)


def test_no_root_at_all_says_how_to_fix():
    with pytest.raises(DataError, match=r"no data location given .*--data-root.*MMSA_DATA_ROOT.*--data-path"):
        resolve_data_path(MOSI)
