"""utils.metrics against hand-computed values (docs/REFERENCE.md §7)."""

import math
import warnings

import numpy as np
import pytest

from utils.errors import ConfigError
from utils.metrics import MOSI_KEYS, SIMS_KEYS, auilc, eval_regression


def _pearson_by_hand(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / math.sqrt((dx * dx).sum() * (dy * dy).sum()))


# Ties at 0 (Has0 and Non0 differ), half-integers, and values beyond the +-3 / +-2 clips.
TRUE = [0.0, 0.0, 1.2, -0.7, 2.5, -3.4]
PRED = [0.3, -0.2, 0.5, -1.5, 3.7, -2.6]


def test_mosi_hand_computed_case():
    m = eval_regression(PRED, TRUE, "mosi")
    assert tuple(m) == MOSI_KEYS
    # Has0: true>=0 = TTTFTF, pred>=0 = TFTFTF -> 5/6.
    assert m["Has0_acc_2"] == 0.8333
    # Weighted F1: class True (support 4): P=3/3, R=3/4 -> 6/7; class False (support 2): P=2/3, R=1 -> 4/5.
    assert m["Has0_F1_score"] == round((4 * 6 / 7 + 2 * 4 / 5) / 6, 4) == 0.8381
    # Non0 drops the two zero truths: true>0 = TFTF, pred>0 = TFTF -> perfect.
    assert m["Non0_acc_2"] == 1.0 and m["Non0_F1_score"] == 1.0
    # Acc-7: round(clip3(true)) = 0,0,1,-1,2(2.5 half-to-even),-3; round(clip3(pred)) = 0,0,0(0.5),-2(-1.5),3,-3.
    assert m["Mult_acc_7"] == 0.5
    # Acc-5: clip2 -> true 0,0,1,-1,2,-2; pred 0,0,0,-2,2,-2.
    assert m["Mult_acc_5"] == round(4 / 6, 4)
    # MAE on unclipped values: (0.3+0.2+0.7+0.8+1.2+0.8)/6; clipped values would give (... 0.5 ... 0.4)/6.
    assert m["MAE"] == round(4.0 / 6, 4)
    assert m["Corr"] == round(_pearson_by_hand(PRED, TRUE), 4)
    assert all(isinstance(v, float) for v in m.values())


def test_mosei_is_the_mosi_family():
    assert eval_regression(PRED, TRUE, "mosei") == eval_regression(PRED, TRUE, "mosi")
    assert eval_regression(PRED, TRUE, "MOSI") == eval_regression(PRED, TRUE, "mosi")


def test_acc7_rounds_half_to_even():
    true = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5]
    assert eval_regression([0, 2, 2, 0, -2, -2], true, "mosi")["Mult_acc_7"] == 1.0
    # Rounding half away from zero would give 1, 2, 3, -1, -2, -3; only 1.5 and -1.5 agree.
    assert eval_regression([1, 2, 3, -1, -2, -3], true, "mosi")["Mult_acc_7"] == round(2 / 6, 4)


def test_clipping_at_3_and_2():
    # 5.0 and 3.2 both clip to 3 (-> class 3) for Acc-7; 2.6 and 9.0 both clip to 2 for Acc-5.
    m = eval_regression([5.0, -9.0], [3.2, -3.0], "mosi")
    assert m["Mult_acc_7"] == 1.0 and m["Mult_acc_5"] == 1.0
    m = eval_regression([2.6, 3.0], [9.0, 2.2], "mosi")
    assert m["Mult_acc_5"] == 1.0 and m["Mult_acc_7"] == 0.5  # round(2.2)=2 vs 3
    assert m["MAE"] == round((6.4 + 0.8) / 2, 4)  # unclipped


@pytest.mark.filterwarnings("ignore:Corr is undefined:RuntimeWarning")
def test_zero_prediction_counts_as_positive_in_has0_and_negative_in_non0():
    m = eval_regression([0.0, 0.0], [0.5, -0.5], "mosi")
    assert m["Has0_acc_2"] == 0.5  # 0 >= 0 is "positive"
    assert m["Non0_acc_2"] == 0.5  # 0 > 0 is false: "negative"
    m = eval_regression([0.0, 0.0], [0.5, 0.0], "mosi")
    assert m["Has0_acc_2"] == 1.0 and m["Non0_acc_2"] == 0.0


def test_sims_bin_edges_are_right_closed():
    pred = [-0.1, 0.1, 0.7, 0.0, -0.7]
    true = [-0.2, 0.05, 0.5, -0.05, -0.9]
    m = eval_regression(pred, true, "sims")
    assert tuple(m) == SIMS_KEYS
    assert m["Mult_acc_2"] == 1.0 and m["Mult_acc_3"] == 1.0 and m["Mult_acc_5"] == 1.0
    # Left-closed bins would put -0.1, 0.1, 0.7 and -0.7 one bin higher.
    m = eval_regression([-0.1, 0.1, 0.7, -0.7], [-0.05, 0.2, 0.75, -0.6], "sims")
    assert m["Mult_acc_5"] == 0.0
    assert m["Mult_acc_3"] == 0.5  # -0.1 vs -0.05 and 0.1 vs 0.2 differ; 0.7/0.75 and -0.7/-0.6 agree
    assert m["Mult_acc_2"] == 1.0


def test_sims_clips_first_and_does_not_round():
    pred = [1.5, -2.0, 0.3]
    true = [1.0, -0.5, 0.2]
    m = eval_regression(pred, true, "sims")
    clipped = [1.0, -1.0, 0.3]
    assert m["MAE"] == pytest.approx((0 + 0.5 + 0.1) / 3, abs=1e-12)
    assert m["MAE"] != round(m["MAE"], 4)  # not rounded
    assert m["Corr"] == pytest.approx(_pearson_by_hand(clipped, true), abs=1e-12)
    # 5 classes: pred 1.0->4, -1.0->0, 0.3->3; true 1.0->4, -0.5->1, 0.2->3.
    assert m["Mult_acc_5"] == pytest.approx(2 / 3)


def test_sims_weighted_f1_by_hand():
    # 2-class bins: 0 = (-1.01, 0], 1 = (0, 1.01].
    true = [0.5, 0.4, 0.3, -0.2, -0.6, 0.0]  # 1 1 1 0 0 0
    pred = [0.2, -0.1, 0.6, 0.1, -0.3, -0.4]  # 1 0 1 1 0 0
    m = eval_regression(pred, true, "sims")
    # class 1: TP 2, FP 1, FN 1 -> P 2/3, R 2/3, F1 2/3; class 0: TP 2, FP 1, FN 1 -> F1 2/3.
    assert m["F1_score"] == pytest.approx(2 / 3)
    assert m["Mult_acc_2"] == pytest.approx(4 / 6)
    true = [0.5, 0.4, 0.3, 0.2, -0.6]  # 1 1 1 1 0
    pred = [0.5, 0.4, -0.3, -0.2, -0.6]  # 1 1 0 0 0
    # class 1: P 1, R 1/2 -> 2/3 (support 4); class 0: P 1/3, R 1 -> 1/2 (support 1).
    m = eval_regression(pred, true, "sims")
    assert m["F1_score"] == pytest.approx((4 * 2 / 3 + 1 * 0.5) / 5)


def test_sims_matches_a_loop_reimplementation_of_the_binning():
    rng = np.random.default_rng(0)
    true = np.round(rng.uniform(-1, 1, 400) * 5) / 5  # multiples of 0.2, as SIMS labels
    pred = rng.normal(0, 0.8, 400)
    pc, tc = np.clip(pred, -1, 1), np.clip(true, -1, 1)

    def binned(x, edges):
        out = np.full(x.shape, -1)
        for i in range(len(edges) - 1):
            out[(x > edges[i]) & (x <= edges[i + 1])] = i
        return out

    m = eval_regression(pred, true, "sims")
    for key, edges in (("Mult_acc_2", [-1.01, 0.0, 1.01]), ("Mult_acc_3", [-1.01, -0.1, 0.1, 1.01]),
                       ("Mult_acc_5", [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01])):
        assert m[key] == pytest.approx(np.mean(binned(pc, edges) == binned(tc, edges)))


def test_constant_predictions_give_nan_corr_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = eval_regression([0.5, 0.5, 0.5], [1.0, -1.0, 2.0], "mosi")
        s = eval_regression([0.5, 0.5, 0.5], [1.0, -1.0, 0.2], "sims")
    assert math.isnan(m["Corr"]) and math.isnan(s["Corr"])
    assert m["MAE"] == round((0.5 + 1.5 + 1.5) / 3, 4)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all("Corr is undefined" in t for t in messages)  # no numpy divide warnings
    assert all(issubclass(w.category, RuntimeWarning) for w in caught)


@pytest.mark.filterwarnings("ignore:Corr is undefined:RuntimeWarning")
def test_all_zero_truths_give_nan_non0():
    with pytest.warns(RuntimeWarning, match="Non0"):
        m = eval_regression([0.1, -0.2, 0.3], [0.0, 0.0, 0.0], "mosi")
    assert math.isnan(m["Non0_acc_2"]) and math.isnan(m["Non0_F1_score"])
    assert m["Has0_acc_2"] == round(2 / 3, 4)


def test_accepts_torch_tensors_and_2d_shapes():
    import torch

    pred = torch.tensor(PRED, requires_grad=True).reshape(-1, 1)
    true = torch.tensor(TRUE).reshape(-1, 1)
    got = eval_regression(pred, true, "mosi")
    want = eval_regression(PRED, TRUE, "mosi")
    # float32 tensors: equal up to the float32 rounding of the inputs.
    assert got.keys() == want.keys()
    assert all(abs(got[k] - want[k]) <= 1e-4 for k in got)


def test_bad_inputs():
    with pytest.raises(ConfigError, match="unknown metric set"):
        eval_regression([0.1], [0.2], "demo")
    with pytest.raises(ValueError, match="differ in size"):
        eval_regression([0.1, 0.2], [0.2], "mosi")
    with pytest.raises(ValueError, match="zero samples"):
        eval_regression([], [], "sims")
    with pytest.raises(ValueError, match="non-finite"):
        eval_regression([float("nan"), 0.2], [0.2, 0.1], "mosi")


def test_auilc_reference_sims_check():
    rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    area = auilc([80.1, 79.2, 77.0, 76.1, 75.0, 73.5], rates)
    assert area == pytest.approx((80.1 / 2 + 79.2 + 77.0 + 76.1 + 75.0 + 73.5 / 2) * 0.1)
    assert round(area, 1) == 38.4
    # Leaving r = 0 out (the captions' reading) gives a different, impossible value.
    assert round(auilc([79.2, 77.0, 76.1, 75.0, 73.5], [0.0, 0.1, 0.2, 0.3, 0.4]), 1) != 38.4


def test_auilc_trapezoid_on_uneven_grid_and_full_grid():
    assert auilc([1.0, 3.0, 3.0], [0.0, 0.5, 1.0]) == pytest.approx(1.0 + 1.5)
    rates = [round(0.1 * i, 1) for i in range(11)]
    assert auilc([2.0] * 11, rates) == pytest.approx(2.0)
    assert math.isnan(auilc([1.0, float("nan")], [0.0, 0.1]))


@pytest.mark.parametrize(
    "values, rates, match",
    [
        ([1, 2, 3], [0.0, 0.2, 0.1], "ascending"),
        ([1, 2, 3], [0.0, 0.1, 0.1], "ascending"),
        ([1, 2], [0.1, 0.2], "start at 0.0"),
        ([1, 2, 3], [0.0, 0.1], "one value per"),
        ([1], [0.0], "at least 2"),
    ],
)
def test_auilc_rejects_bad_grids(values, rates, match):
    with pytest.raises(ConfigError, match=match):
        auilc(values, rates)


def _reference_bins(x: np.ndarray, edges) -> np.ndarray:
    """The reference's loop over left-open, right-closed bins, comparing ``x`` with Python floats (numpy
    does that in x's own precision)."""
    out = np.full(x.shape, -1)
    for i in range(len(edges) - 1):
        out[(x > edges[i]) & (x <= edges[i + 1])] = i
    return out


SIMS_BIN_KEYS = (("Mult_acc_2", [-1.01, 0.0, 1.01]), ("Mult_acc_3", [-1.01, -0.1, 0.1, 1.01]),
                 ("Mult_acc_5", [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sims_bins_at_and_next_to_every_edge_as_the_reference(dtype):
    """Values at an edge and one ulp either side of it, in float32 (the reference's tensors) and in float64."""
    edges = (-1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0)
    values = []
    for edge in edges:
        e = dtype(edge)
        values += [np.nextafter(e, dtype(-2)), e, np.nextafter(e, dtype(2))]
    values = np.array(values, dtype=dtype)
    rng = np.random.default_rng(3)
    for _ in range(20):
        pred, true = rng.permutation(values), rng.permutation(values)
        m = eval_regression(pred, true, "sims")
        for key, bin_edges in SIMS_BIN_KEYS:
            want = np.mean(_reference_bins(np.clip(pred, -1.0, 1.0), bin_edges)
                           == _reference_bins(np.clip(true, -1.0, 1.0), bin_edges))
            assert m[key] == pytest.approx(want, abs=0), key


def test_float32_label_at_an_edge_stays_in_the_reference_bin():
    """0.1 in float32 is 0.100000001: compared in float32 it is still <= 0.1, so it is in (-0.1, 0.1] with
    0.05; widened to float64 first it would cross into (0.1, 0.7]. Likewise -0.7 (-0.699999988) stays in
    [-1, -0.7] with -0.9 in float32 and crosses into (-0.7, -0.1] in float64."""
    pred = np.array([0.1, 0.7, -0.1, -0.7], dtype=np.float32)
    true = np.array([0.05, 0.5, -0.2, -0.9], dtype=np.float32)
    m = eval_regression(pred, true, "sims")
    assert m["Mult_acc_5"] == 1.0 and m["Mult_acc_3"] == 1.0
    m64 = eval_regression(pred.astype(np.float64), true.astype(np.float64), "sims")
    assert m64["Mult_acc_5"] == 0.5  # 0.1 and -0.7, widened, land in another bin


def test_float32_inputs_come_from_torch_too():
    torch = pytest.importorskip("torch")
    pred, true = torch.tensor([0.1, 0.7], dtype=torch.float32), torch.tensor([0.05, 0.5], dtype=torch.float32)
    assert eval_regression(pred, true, "sims")["Mult_acc_3"] == 1.0


def _reference_auc_row(per_seed: np.ndarray) -> np.ndarray:
    """run_once.py's rule, written from its description: seed means x100 rounded to 2 decimals, trapezoid
    with step 0.1 over a (rates, metrics) matrix, area rounded to 1 decimal."""
    means = np.array([[round(np.mean(per_seed[r, :, k]) * 100, 2) for k in range(per_seed.shape[2])]
                      for r in range(per_seed.shape[0])])
    return (np.sum(means[:-1] + means[1:], axis=0) / 2 * 0.1).round(1)


def test_auilc_row_equals_the_reference_digit_for_digit():
    from utils.metrics import auilc_row

    rng = np.random.default_rng(7)
    rates = [round(0.1 * i, 1) for i in range(11)]
    for _ in range(200):
        per_seed = np.round(rng.uniform(0.3, 0.9, (11, 3, 10)), 4)  # 4-decimal metrics, 3 seeds, 10 keys
        means = {f"k{k}": [float(np.mean(per_seed[r, :, k]) * 100) for r in range(11)] for k in range(10)}
        got = auilc_row(means, rates)
        assert list(got.values()) == _reference_auc_row(per_seed).tolist()


def test_auilc_row_rounds_the_means_first():
    """Rounding the means to 2 decimals before the trapezoid changes the first decimal here."""
    from utils.metrics import auilc_row

    means = [70.2365, 79.0095, 62.8835, 78.973, 66.237, 68.4675, 76.554, 68.184, 70.992, 60.551, 75.0705]
    rates = [round(0.1 * i, 1) for i in range(11)]
    assert auilc_row({"x": means}, rates)["x"] == 70.4
    assert round(auilc(means, rates), 1) == 70.5  # the unrounded area would print 70.5


def test_auilc_row_over_a_chosen_range_only_when_asked():
    """The reference's AUC row starts at rate 0.0; a range such as the captions' 0.1-1.0 must be asked for."""
    from utils.metrics import auilc_row

    rates = [0.1, 0.2, 0.3]
    with pytest.raises(ConfigError, match="start at 0.0"):
        auilc_row({"x": [80.0, 70.0, 60.0]}, rates)
    with pytest.raises(ConfigError, match="start at 0.0"):
        auilc_row({"x": [80.0, 70.0, 60.0]}, rates, from_zero=True)
    assert auilc_row({"x": [80.0, 70.0, 60.0]}, rates, from_zero=False) == {"x": 14.0}  # (150 + 130) / 2 * 0.1


def test_sims_clips_the_truths_too():
    """The reference clips both sides to [-1, 1]: a label of 1.4 scores like 1.0, -1.6 like -1.0."""
    pred = [1.0, -1.0, 0.5, -0.2]
    m = eval_regression(pred, [1.4, -1.6, 0.4, -0.3], "sims")
    assert m == eval_regression(pred, [1.0, -1.0, 0.4, -0.3], "sims")
    assert m["MAE"] == pytest.approx((0 + 0 + 0.1 + 0.1) / 4, abs=1e-12)


def test_mosi_clips_the_truths_too():
    """The reference clips both sides to [-3, 3] for Acc-7: a label of -3.6 is class -3, not -4."""
    m = eval_regression([-3.0, 3.0], [-3.6, 3.6], "mosi")
    assert m["Mult_acc_7"] == 1.0 and m["Mult_acc_5"] == 1.0


def test_all_zero_labels_warn_that_non0_is_undefined():
    with pytest.warns(RuntimeWarning, match=r"^every label is 0, so Non0_acc_2 and Non0_F1_score are undefined"):
        m = eval_regression([0.5, -0.5], [0.0, 0.0], "mosi")
    assert math.isnan(m["Non0_acc_2"]) and math.isnan(m["Non0_F1_score"])


def test_auilc_on_an_uneven_grid_weights_each_pair_by_its_width():
    # (1 + 2) / 2 * 0.1 + (2 + 4) / 2 * 0.2 = 0.15 + 0.6
    assert auilc([1.0, 2.0, 4.0], [0.0, 0.1, 0.3]) == pytest.approx(0.75, abs=1e-12)


def test_inputs_keep_float32_or_become_float64():
    import torch

    from utils.metrics import _as_flat_array

    assert _as_flat_array(torch.tensor([[1.5], [2.5]], dtype=torch.bfloat16), "x").dtype == np.float32
    assert _as_flat_array(torch.tensor([1.0 + 1e-12], dtype=torch.float64), "x")[0] == 1.0 + 1e-12
    assert _as_flat_array(torch.tensor([3], dtype=torch.int32), "x").dtype == np.float64
    with pytest.raises(ValueError, match=r"^labels contains 2 non-finite value\(s\)"):
        _as_flat_array([1.0, float("nan"), float("inf")], "labels")


def test_corr_of_two_samples_and_of_a_label_spread_of_one():
    assert eval_regression([1.0, 2.0], [1.0, 3.0], "mosi")["Corr"] == 1.0
    assert eval_regression([0.0, 1.0, 0.5], [0.0, 1.0, 0.5], "mosi")["Corr"] == 1.0


@pytest.mark.parametrize("pred, true, side", [([1.0, 1.0, 1.0], [0.0, 1.0, 2.0], "predictions"),
                                              ([0.0, 1.0, 0.5], [1.0, 1.0, 1.0], "labels"),
                                              ([0.5], [1.0], "predictions"),
                                              ([0.0, 1.0], [2.0, 2.0], "labels")])
def test_constant_side_is_named_in_the_corr_warning(pred, true, side):
    with pytest.warns(RuntimeWarning, match=rf"^Corr is undefined because the {side} are constant") as w:
        assert math.isnan(eval_regression(pred, true, "mosi")["Corr"])
    assert len(w) == 1


def test_unknown_metric_set_message_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"expected one of mosei, mosi, sims \(for the demo/tiny presets pass"):
        eval_regression([1.0, 2.0], [1.0, 2.0], "demo")


def test_auilc_error_messages_name_the_offending_rates():
    with pytest.raises(ConfigError, match=r"must start at 0.0 \(the complete-data point\), got 0.1$"):
        auilc([1, 2], [0.1, 0.2])
    with pytest.raises(ConfigError, match=r"missing rates must be finite numbers, got \[0.0, inf\]"):
        auilc([1, 2], [0.0, float("inf")])


@pytest.mark.parametrize("bad", ["pred", "true"])
def test_a_non_finite_input_is_named_with_its_count(bad):
    values = {"pred": [0.1, 0.2, 0.3], "true": [0.1, 0.2, 0.3]}
    values[bad] = [float("nan"), 0.2, float("inf")]
    name = {"pred": "predictions", "true": "labels"}[bad]
    with pytest.raises(ValueError, match=rf"^{name} contains 2 non-finite value\(s\) \(nan/inf\); metrics need finite"):
        eval_regression(values["pred"], values["true"], "mosi")
    with pytest.raises(ValueError, match=r"^cannot compute metrics on zero samples$"):
        eval_regression([], [], "mosi")


def test_a_grid_starting_within_1e_12_of_zero_counts_as_starting_at_zero():
    from utils.metrics import trapezoid_areas

    assert trapezoid_areas([[1.0], [1.0]], [1e-12, 1.0])[0] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="must start at 0.0"):
        trapezoid_areas([[1.0], [1.0]], [1e-11, 1.0])
