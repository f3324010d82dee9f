"""The train-rate x test-rate matrix of ``run.py --evaluate`` as tables and a heat-map.

From ``RESULTS_DIR/evaluation.json`` (trains.evaluate_saved) it writes, by default to
``RESULTS_DIR/evaluation/``:

* ``matrix.md``: per metric of the paper's tables, one table with a row per training rate and a column per
  test rate, mean ± population std over seeds (MAE and Corr as fractions, accuracies and F1 in percent);
  the diagonal (a model tested at its own rate) is the sweep's own result;
* ``matrix.csv``: the same numbers in long form (train rate, test rate, metric, mean, std, seeds);
* ``matrix.png``: heat-maps of the metrics of the paper's figures, the value written in each square.

``run.py --evaluate`` writes them after each evaluation, and ``make demo`` prints its models' matrices.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from utils.errors import UserError
from utils.io import atomic_write_text
from utils.report import CURVE_METRICS, TABLE_COLUMNS, fmt, markdown_table, paper_scale

EVALUATION_FILE = "evaluation.json"
#: Metric shown when the command prints one matrix.
HEADLINE_METRIC = "MAE"
#: Relative luminance weights of red, green and blue: the number on a dark square is written in white.
LUMINANCE = (0.299, 0.587, 0.114)


def load_evaluation(results_dir: Path) -> dict:
    path = Path(results_dir) / EVALUATION_FILE
    if not path.is_file():
        raise UserError(f"{results_dir} holds no {EVALUATION_FILE}: run run.py --evaluate {results_dir} first")
    evaluation = json.loads(path.read_text())
    config = json.loads((Path(results_dir) / "config.json").read_text())["config"]
    evaluation["family"] = "sims" if config.get("metric_set") == "sims" else "mosi"
    return evaluation


def _tags(evaluation: dict) -> tuple[list[str], list[str]]:
    """Training and test rate tags, each sorted by their (text, audio, vision) rates."""
    matrix = evaluation["matrix"]
    train = sorted(matrix, key=lambda t: next(iter(matrix[t].values()))["train_rates"])
    tests = {tag: cell["test_rates"] for row in matrix.values() for tag, cell in row.items()}
    return train, sorted(tests, key=tests.get)


def metric_keys(family: str) -> list[str]:
    return [key for _, keys in TABLE_COLUMNS[family] for key in keys]


def matrix_table(evaluation: dict, key: str) -> pd.DataFrame:
    """Rows: training rate; columns: test rate; cells "mean ± std" on the paper's scale."""
    train_tags, test_tags = _tags(evaluation)
    rows = []
    for train_tag in train_tags:
        row = {"train \\ test": train_tag}
        for test_tag in test_tags:
            cell = evaluation["matrix"][train_tag].get(test_tag)
            if cell is None:
                row[test_tag] = ""
                continue
            mean, std = paper_scale(key, cell["mean"][key]), paper_scale(key, cell["std"][key])
            row[test_tag] = f"{fmt(key, mean)} ± {fmt(key, std)}"
        rows.append(row)
    return pd.DataFrame(rows)


def long_table(evaluation: dict, family: str) -> pd.DataFrame:
    rows = []
    for train_tag, row in evaluation["matrix"].items():
        for test_tag, cell in row.items():
            for key in metric_keys(family):
                rows.append({"train_rate": train_tag, "test_rate": test_tag, "metric": key,
                             "mean": paper_scale(key, cell["mean"][key]), "std": paper_scale(key, cell["std"][key]),
                             "seeds": " ".join(map(str, cell["seeds"]))})
    return pd.DataFrame(rows)


def plot_heatmaps(evaluation: dict, family: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    train_tags, test_tags = _tags(evaluation)
    metrics = CURVE_METRICS[family]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 + 0.55 * len(test_tags)) * np.array([len(metrics), 0.9]) / 1.6,
                             squeeze=False)
    for ax, (title, key) in zip(axes[0], metrics):
        values = np.full((len(train_tags), len(test_tags)), np.nan)
        for i, train_tag in enumerate(train_tags):
            for j, test_tag in enumerate(test_tags):
                cell = evaluation["matrix"][train_tag].get(test_tag)
                if cell is not None:
                    values[i, j] = paper_scale(key, cell["mean"][key])
        image = ax.imshow(values, cmap="viridis_r" if key == "MAE" else "viridis", aspect="auto")
        for i in range(len(train_tags)):
            for j in range(len(test_tags)):
                if not np.isnan(values[i, j]):
                    red, green, blue, _ = image.cmap(image.norm(values[i, j]))
                    dark = LUMINANCE[0] * red + LUMINANCE[1] * green + LUMINANCE[2] * blue < 0.5
                    ax.text(j, i, fmt(key, values[i, j]), ha="center", va="center", fontsize=6,
                            color="w" if dark else "k")
        ax.set_xticks(range(len(test_tags)), test_tags, rotation=45, fontsize=7)
        ax.set_yticks(range(len(train_tags)), train_tags, fontsize=7)
        ax.set_xlabel("test missing rate")
        ax.set_ylabel("training missing rate")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(f"{evaluation['dataset']} {evaluation['variant'].upper()}: models tested at other missing rates")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=150)
    tmp.replace(path)
    plt.close(fig)
    return path


def write_matrix_report(results_dir: Path, out: Path | None = None, prefix: str = "matrix") -> dict:
    """Write ``<prefix>.md``, ``.csv`` and ``.png`` to ``out`` (default ``results_dir/evaluation``); return
    their folder and the Markdown table of the headline metric."""
    evaluation = load_evaluation(results_dir)
    family = evaluation["family"]
    out = Path(out) if out else Path(results_dir) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    blocks = [f"### {key}\n\n{markdown_table(matrix_table(evaluation, key))}" for key in metric_keys(family)]
    title = (f"# {evaluation['dataset']} {evaluation['variant'].upper()}: trained at one missing rate (rows), "
             f"tested at another (columns); mean ± std over seeds")
    atomic_write_text(out / f"{prefix}.md", title + "\n\n" + "\n\n".join(blocks) + "\n")
    atomic_write_text(out / f"{prefix}.csv", long_table(evaluation, family).to_csv(index=False))
    figure = plot_heatmaps(evaluation, family, out / f"{prefix}.png")
    headline = markdown_table(matrix_table(evaluation, HEADLINE_METRIC))
    return {"out": out, "figure": figure, "markdown": f"{HEADLINE_METRIC}, train rate (rows) x test rate (columns):\n\n{headline}"}
