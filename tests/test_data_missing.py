"""The missing-feature protocol (docs/REFERENCE.md §3.2 step 3) against hand-built expectations."""

import re

import numpy as np
import pytest

from data.missing import UNK_ID, frame_valid_mask, keep_mask, mask_frames, mask_rng, mask_text_ids
from tests.data_fixtures import isolated_data_state, make_mmsa  # noqa: F401 (fixture)

SEED_T, SEED_A = 111, 1111


@pytest.fixture
def text_bert():
    return make_mmsa()["train"]["text_bert"]  # (6, 3, 8); rows 0 and 3 (index 0) are full length


@pytest.fixture
def audio_split():
    split = make_mmsa()["valid"]
    return split["audio"], split["audio_lengths"]


def reference_text_keep(attention, rate, seed):
    """The reference's steps, literally: global seed, one uniform draw, keep, force [CLS] and [SEP]."""
    np.random.seed(seed)
    keep = (np.random.uniform(size=attention.shape) > rate) * attention
    lengths = np.argmin(attention, axis=1)
    for i, row in enumerate(keep):
        row[0] = 1
        row[lengths[i] - 1] = 1
    return keep


def reference_frame_keep(lengths, max_len, rate, seed):
    valid = np.array([[1] * n + [0] * (max_len - n) for n in lengths], dtype=np.int64)
    np.random.seed(seed)
    return (np.random.uniform(size=valid.shape) > rate) * valid


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_text_mask_matches_the_reference_draw(text_bert, rate):
    attention = text_bert[:, 1]
    expected = reference_text_keep(attention.copy(), rate, SEED_T)
    got = keep_mask(attention == 1, rate, SEED_T, is_text=True)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected.astype(bool))


@pytest.mark.parametrize("rate", [0.0, 0.4, 1.0])
def test_frame_mask_matches_the_reference_draw(audio_split, rate):
    audio, lengths = audio_split
    expected = reference_frame_keep(lengths, audio.shape[1], rate, SEED_A)
    got = keep_mask(frame_valid_mask(lengths, audio.shape[1]), rate, SEED_A, is_text=False)
    np.testing.assert_array_equal(got, expected.astype(bool))
    np.testing.assert_array_equal(mask_frames(audio, got), expected[..., None] * audio)


def test_global_numpy_rng_is_left_alone(audio_split):
    audio, lengths = audio_split
    np.random.seed(7)
    expected_next = np.random.uniform(size=5)
    np.random.seed(7)
    keep_mask(frame_valid_mask(lengths, audio.shape[1]), 0.5, SEED_A, is_text=False)
    np.testing.assert_array_equal(np.random.uniform(size=5), expected_next)


def test_rate_zero_is_the_identity(text_bert, audio_split):
    attention = text_bert[:, 1]
    keep = keep_mask(attention == 1, 0.0, SEED_T, is_text=True)
    np.testing.assert_array_equal(keep, attention == 1)
    np.testing.assert_array_equal(mask_text_ids(text_bert[:, 0], attention, keep), text_bert[:, 0])
    audio, lengths = audio_split
    valid = frame_valid_mask(lengths, audio.shape[1])
    np.testing.assert_array_equal(mask_frames(audio, keep_mask(valid, 0.0, SEED_A, is_text=False)), audio)


def test_rate_one_drops_everything_but_cls_and_sep(text_bert, audio_split):
    attention, ids = text_bert[:, 1], text_bert[:, 0]
    keep = keep_mask(attention == 1, 1.0, SEED_T, is_text=True)
    new_ids = mask_text_ids(ids, attention, keep)
    for i in range(len(ids)):
        count = int(attention[i].sum())
        assert new_ids[i, 0] == ids[i, 0] == 101
        assert new_ids[i, count - 1] == ids[i, count - 1] == 102
        assert (new_ids[i, 1 : count - 1] == UNK_ID).all()
        assert (new_ids[i, count:] == 0).all()  # pads stay 0
        assert keep[i].sum() == 2
    audio, lengths = audio_split
    keep = keep_mask(frame_valid_mask(lengths, audio.shape[1]), 1.0, SEED_A, is_text=False)
    assert not keep.any()
    assert not mask_frames(audio, keep).any()


def test_sep_of_a_full_length_row_is_the_last_position(text_bert):
    attention = text_bert[:, 1]
    assert attention[0].all()  # a full-length row, so argmin is 0 and index -1 is forced
    keep = keep_mask(attention == 1, 1.0, SEED_T, is_text=True)
    assert keep[0, -1] and keep[0, 0] and keep[0].sum() == 2


def test_masks_are_nested_across_rates(text_bert, audio_split):
    attention = text_bert[:, 1] == 1
    audio, lengths = audio_split
    valid = frame_valid_mask(lengths, audio.shape[1])
    rates = [0.0, 0.1, 0.3, 0.5, 0.7, 1.0]
    for is_text, mask in ((True, attention), (False, valid)):
        keeps = [keep_mask(mask, r, SEED_A, is_text=is_text) for r in rates]
        for lower, higher in zip(keeps, keeps[1:]):
            assert not (higher & ~lower).any()  # kept at the higher rate => kept at the lower one
        assert keeps[0].sum() > keeps[3].sum() > keeps[-1].sum()


def test_padding_is_never_kept_and_text_mask_is_unchanged(text_bert, audio_split):
    attention = text_bert[:, 1]
    for rate in (0.0, 0.5):
        keep = keep_mask(attention == 1, rate, SEED_T, is_text=True)
        assert not (keep & (attention == 0)).any()
        new_ids = mask_text_ids(text_bert[:, 0], attention, keep)
        assert (new_ids[attention == 0] == 0).all()
    audio, lengths = audio_split
    valid = frame_valid_mask(lengths, audio.shape[1])
    assert not (keep_mask(valid, 0.2, SEED_A, is_text=False) & ~valid).any()


def test_frame_valid_mask():
    np.testing.assert_array_equal(
        frame_valid_mask(np.array([1, 3]), 4), np.array([[1, 0, 0, 0], [1, 1, 1, 0]], dtype=bool)
    )


def test_redraw_epoch_zero_is_static_and_later_epochs_differ(audio_split):
    audio, lengths = audio_split
    valid = frame_valid_mask(lengths, audio.shape[1])
    static = keep_mask(valid, 0.5, SEED_A, is_text=False)
    np.testing.assert_array_equal(keep_mask(valid, 0.5, SEED_A, is_text=False, epoch=0), static)
    epoch1 = keep_mask(valid, 0.5, SEED_A, is_text=False, epoch=1)
    epoch2 = keep_mask(valid, 0.5, SEED_A, is_text=False, epoch=2)
    assert not np.array_equal(epoch1, static) and not np.array_equal(epoch1, epoch2)
    np.testing.assert_array_equal(keep_mask(valid, 0.5, SEED_A, is_text=False, epoch=1), epoch1)
    assert not (epoch1 & ~valid).any()


def test_lnln_draws_one_rate_per_sample_after_the_reference_draw(audio_split):
    audio, lengths = audio_split
    valid = frame_valid_mask(lengths, audio.shape[1])
    rng = np.random.RandomState(SEED_A)
    uniform = rng.uniform(size=valid.shape)
    rates = rng.uniform(size=(valid.shape[0], 1))
    expected = (uniform > rates) & valid
    got = keep_mask(valid, 0.0, SEED_A, is_text=False, protocol="lnln")
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, keep_mask(valid, 0.0, SEED_A, is_text=False))  # the rate argument is ignored
    np.testing.assert_array_equal(keep_mask(valid, 0.7, SEED_A, is_text=False, protocol="lnln"), got)


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="protocol"):
        keep_mask(np.ones((2, 3), dtype=bool), 0.1, 1, is_text=False, protocol="dynamic")


def test_a_position_whose_draw_equals_the_rate_is_dropped():
    """The reference keeps a position only when U > r strictly: at U == r it is dropped."""
    valid = np.ones((2, 3), dtype=bool)
    first_draw = np.random.RandomState(SEED_A).uniform(size=valid.shape)[0, 0]
    keep = keep_mask(valid, first_draw, SEED_A, is_text=False)
    assert not keep[0, 0]
    np.testing.assert_array_equal(keep, np.random.RandomState(SEED_A).uniform(size=valid.shape) > first_draw)


def test_a_numeric_valid_mask_is_read_as_booleans(text_bert):
    """The text valid mask arrives as the float row of ``text_bert``; the keep-mask is boolean all the same."""
    attention = text_bert[:, 1]  # float32 0/1
    got = keep_mask(attention, 0.5, SEED_T, is_text=True)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, keep_mask(attention == 1, 0.5, SEED_T, is_text=True))
    frames = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.int64)
    assert keep_mask(frames, 0.0, SEED_A, is_text=False).dtype == bool


def test_mask_generator_of_each_epoch():
    """Epoch 0 (and the default) is the reference's RandomState(seed); epoch e > 0 is seeded from
    SeedSequence([seed, e])."""
    np.testing.assert_array_equal(mask_rng(SEED_A).uniform(size=4), np.random.RandomState(SEED_A).uniform(size=4))
    epoch3 = np.random.RandomState(np.random.SeedSequence([SEED_A, 3]).generate_state(1)[0])
    np.testing.assert_array_equal(mask_rng(SEED_A, 3).uniform(size=4), epoch3.uniform(size=4))


def test_masked_ids_keep_the_ids_dtype():
    ids = np.array([101, 7, 102, 0], dtype=np.float32)
    out = mask_text_ids(ids, np.array([1, 1, 1, 0], dtype=np.float32), np.array([1, 0, 1, 0], dtype=bool))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [101, 100, 102, 0])


def test_a_missing_rate_is_a_finite_real_number_in_0_1():
    from data.missing import check_missing_rate, check_protocol
    from utils.errors import ConfigError

    assert check_missing_rate(0) == 0.0 and isinstance(check_missing_rate(1), float)
    assert check_missing_rate(np.float32(0.5), "audio") == 0.5
    for bad in (True, "0.3", None, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=rf"^missing rate must be a number in \[0, 1\], got {re.escape(repr(bad))}$"):
            check_missing_rate(bad)
    with pytest.raises(ConfigError, match=r"^missing rate of vision must be a number in \[0, 1\], got 'x'$"):
        check_missing_rate("x", "vision")
    for outside in (1.5, -0.1, 1.0000001):
        with pytest.raises(ConfigError, match=rf"^missing rate {outside} is outside \[0, 1\]$"):
            check_missing_rate(outside)
    with pytest.raises(ConfigError, match=r"^missing rate 1.5 of text is outside \[0, 1\]$"):
        check_missing_rate(1.5, "text")
    check_protocol("static")
    check_protocol("lnln")
    with pytest.raises(ConfigError, match=r"^missing-mask protocol must be one of static, lnln, got 'random'$"):
        check_protocol("random")
