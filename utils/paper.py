"""The paper's published numbers, for overlays and comparisons (reference-behaviour §10).

AUILC values are Table 6 (MOSI, MOSEI) and Table 7 (SIMS) of the paper, on the paper's scale (MAE and
Corr as fractions, accuracies and F1 in percent). Curve readings were read by eye from Figures 4-6
(EMT-DLFR, about ±1 point, x100 scale); where only the two ends of a curve were read, only those are given.
"""

from __future__ import annotations

#: dataset -> metric key -> AUILC on the paper's scale.
PAPER_AUILC = {
    "mosi": {"MAE": 1.106, "Corr": 0.486, "Mult_acc_7": 32.5, "Mult_acc_5": 35.6, "Has0_acc_2": 69.6,
             "Non0_acc_2": 70.3, "Has0_F1_score": 69.6, "Non0_F1_score": 70.3},
    "mosei": {"MAE": 0.665, "Corr": 0.546, "Mult_acc_7": 47.9, "Mult_acc_5": 48.8, "Has0_acc_2": 76.4,
              "Non0_acc_2": 76.9, "Has0_F1_score": 75.2, "Non0_F1_score": 75.9},
    "sims": {"MAE": 0.215, "Corr": 0.287, "Mult_acc_5": 20.4, "Mult_acc_3": 31.9, "Mult_acc_2": 38.4,
             "F1_score": 38.5},
}

_FULL = tuple(round(0.1 * i, 1) for i in range(11))
_SIMS = tuple(round(0.1 * i, 1) for i in range(6))

#: dataset -> metric key -> (rates, values x100) read from the paper's figures.
PAPER_CURVES = {
    "mosi": {
        "MAE": (_FULL, (70.5, 77, 85.5, 91.5, 102.5, 111.5, 122, 126.5, 133, 142, 145)),
        "Corr": ((0.0, 1.0), (79.5, 8)),
        "Mult_acc_7": ((0.0, 1.0), (47.5, 17.5)),
        "Non0_acc_2": ((0.0, 1.0), (85, 53)),
    },
    "mosei": {
        "MAE": ((0.0, 1.0), (52.7, 83.5)),
        "Corr": ((0.0, 1.0), (77.5, 10)),
        "Mult_acc_7": ((0.0, 1.0), (54.5, 41.4)),
        "Non0_acc_2": ((0.0, 1.0), (86, 63)),
    },
    "sims": {
        "MAE": (_SIMS, (39.6, 41.7, 42.2, 44.2, 44.7, 45.1)),
        "Corr": ((0.0, 0.5), (62.3, 54)),
        "Mult_acc_5": ((0.0, 0.5), (43.5, 37.2)),
        "Mult_acc_2": (_SIMS, (80.1, 79.2, 77.0, 76.1, 75.0, 73.5)),
    },
}
