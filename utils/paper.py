"""The paper's published numbers, for overlays and comparisons (docs/REFERENCE.md §10).

AUILC values are Table 6 (MOSI, MOSEI) and Table 7 (SIMS) of the paper (read from the table images of the
authors' README), on the paper's scale (MAE and Corr as fractions, accuracies and F1 in percent), for
EMT-DLFR and the two baselines this project runs, MulT and TFR-Net. Curve readings were read by eye from Figures 4-6
(EMT-DLFR, about ±1 point, x100 scale); where only the two ends of a curve were read, only those are given.
"""

from __future__ import annotations

#: dataset -> model -> metric key -> AUILC on the paper's scale: the rows of Tables 6 and 7 that the paper
#: reproduced with the authors' code under the missing protocol (not the rows marked as quoted from [16]).
PAPER_TABLE_ROWS = {
    "mosi": {
        "mult": {"MAE": 1.263, "Corr": 0.348, "Mult_acc_7": 23.1, "Mult_acc_5": 24.6, "Has0_acc_2": 63.1,
                 "Non0_acc_2": 63.2, "Has0_F1_score": 60.7, "Non0_F1_score": 61.0},
        "tfr_net": {"MAE": 1.156, "Corr": 0.452, "Mult_acc_7": 27.7, "Mult_acc_5": 30.5, "Has0_acc_2": 67.6,
                    "Non0_acc_2": 67.8, "Has0_F1_score": 65.7, "Non0_F1_score": 66.1},
        "emt-dlfr": {"MAE": 1.106, "Corr": 0.486, "Mult_acc_7": 32.5, "Mult_acc_5": 35.6, "Has0_acc_2": 69.6,
                     "Non0_acc_2": 70.3, "Has0_F1_score": 69.6, "Non0_F1_score": 70.3},
    },
    "mosei": {
        "mult": {"MAE": 0.700, "Corr": 0.504, "Mult_acc_7": 46.3, "Mult_acc_5": 46.8, "Has0_acc_2": 74.4,
                 "Non0_acc_2": 75.1, "Has0_F1_score": 72.9, "Non0_F1_score": 72.6},
        "tfr_net": {"MAE": 0.689, "Corr": 0.511, "Mult_acc_7": 46.9, "Mult_acc_5": 47.3, "Has0_acc_2": 74.7,
                    "Non0_acc_2": 74.2, "Has0_F1_score": 73.5, "Non0_F1_score": 73.4},
        "emt-dlfr": {"MAE": 0.665, "Corr": 0.546, "Mult_acc_7": 47.9, "Mult_acc_5": 48.8, "Has0_acc_2": 76.4,
                     "Non0_acc_2": 76.9, "Has0_F1_score": 75.2, "Non0_F1_score": 75.9},
    },
    "sims": {
        "mult": {"MAE": 0.242, "Corr": 0.233, "Mult_acc_5": 16.7, "Mult_acc_3": 30.0, "Mult_acc_2": 37.3,
                 "F1_score": 36.8},
        "tfr_net": {"MAE": 0.236, "Corr": 0.253, "Mult_acc_5": 17.8, "Mult_acc_3": 30.0, "Mult_acc_2": 37.3,
                    "F1_score": 37.2},
        "emt-dlfr": {"MAE": 0.215, "Corr": 0.287, "Mult_acc_5": 20.4, "Mult_acc_3": 31.9, "Mult_acc_2": 38.4,
                     "F1_score": 38.5},
    },
}

#: dataset -> metric key -> EMT-DLFR's AUILC on the paper's scale.
PAPER_AUILC = {dataset: rows["emt-dlfr"] for dataset, rows in PAPER_TABLE_ROWS.items()}

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
