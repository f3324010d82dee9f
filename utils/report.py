"""Turn one or more sweep directories into the paper's tables and curves.

    python -m utils.report results/mosi/emt-dlfr/run_once results/mosi/emt/run_once [--paper] [--out DIR]
    python -m utils.report results/mosi/emt-dlfr/run_once --auilc-range 0.1 1.0    # AUILC over other rates
    python -m utils.report results/mosi/{emt,emt-llfr,emt-hlfr,emt-dlfr}/run_once     # the ablation table
    python -m utils.report --table 6 [--results results] [--paper]      # Table 6: MulT, TFR-Net, EMT-DLFR
    python -m utils.report --table 7 [--results results] [--paper]      # Table 7 (SIMS)

Each directory is a sweep written by run.py (``results.json`` + ``config.json``); each becomes one
variant (MulT, TFR-Net, EMT-DLFR, EMT-HLFR, EMT-LLFR, EMT, or any other config), shown side by side:

* ``auilc.md`` / ``auilc.csv``: the Table 6 layout for MOSI/MOSEI (MAE, Corr, Acc-7, Acc-5, Acc-2 and F1
  as Has0/Non0) or the Table 7 layout for SIMS, one row per variant, AUILC over the swept rates
  (trapezoid including rate 0.0); with ``--paper`` the paper's published row is added, labelled as such.
  ``--auilc-range LO HI`` takes the area over the swept rates in [LO, HI] instead, by the same rounding rule
  (the paper's captions name 0.1-1.0; the TFR-Net maintainers suggest leaving 1.0 out); the header then names
  the range and the rates, and the published rows, which are over 0.0-1.0, are left out.
* ``per_modality.md`` / ``per_modality.csv``, when a folder holds ``--diff-missing`` cells: for each modality,
  the cells where only that modality's rate varies (the other two fixed), one row per rate, mean ± std over
  seeds. They are read from the cell files, so every ``--diff-missing`` run into the folder counts.
* ``per_rate.md`` / ``per_rate.csv``: per rate, mean ± population std over seeds, one column per variant.
* ``curves.png`` / ``curves.pdf`` / ``curves.svg``: metric against missing rate, one line per variant (Figures 4-6);
  with ``--paper`` the curve readings from the paper's figures are overlaid as a dashed reference line.

``--table 6`` / ``--table 7`` read the sweeps the scripts write (``<results>/<dataset>/<model>/run_once``
for MOSI and MOSEI, or SIMS) and print the paper's table itself: one row per model measured here, the
datasets side by side, and with ``--paper`` the published rows below them (``table6.md`` / ``table7.md``).

Scales follow the paper: MAE and Corr as fractions, accuracies and F1 in percent.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional

import pandas as pd

from utils.errors import ConfigError, UserError
from utils.io import atomic_write_text
from config import MODEL_NAMES, MODEL_TITLES
from utils.metrics import auilc_row
from utils.paper import PAPER_CURVES, PAPER_TABLE_ROWS
from utils.results import Rates, rate_tag, read_cells, seed_stats

#: (column title, metric keys) of the paper's tables; two keys are shown as "Has0/Non0".
TABLE_COLUMNS = {
    "mosi": (("MAE", ("MAE",)), ("Corr", ("Corr",)), ("Acc-7", ("Mult_acc_7",)), ("Acc-5", ("Mult_acc_5",)),
             ("Acc-2", ("Has0_acc_2", "Non0_acc_2")), ("F1", ("Has0_F1_score", "Non0_F1_score"))),
    "sims": (("MAE", ("MAE",)), ("Corr", ("Corr",)), ("Acc-5", ("Mult_acc_5",)), ("Acc-3", ("Mult_acc_3",)),
             ("Acc-2", ("Mult_acc_2",)), ("F1", ("F1_score",))),
}
#: Metrics drawn in the curves (as the paper's figures).
CURVE_METRICS = {
    "mosi": (("MAE", "MAE"), ("Corr", "Corr"), ("Acc-7", "Mult_acc_7"), ("Acc-2 (Non0)", "Non0_acc_2")),
    "sims": (("MAE", "MAE"), ("Corr", "Corr"), ("Acc-5", "Mult_acc_5"), ("Acc-2", "Mult_acc_2")),
}
#: Shown as fractions (value x100 / 100), as in the paper's tables.
FRACTION_METRICS = ("MAE", "Corr")
FIGURE_NUMBER = {"mosi": 4, "mosei": 5, "sims": 6}
#: The paper's comparison tables: number -> datasets, side by side.
PAPER_TABLES = {6: ("mosi", "mosei"), 7: ("sims",)}
#: What a table cell shows when that model has no sweep here.
NOT_RUN = "–"
#: The reference's AUILC range: every swept rate from the complete data (0.0) up (docs/REFERENCE.md §7).
DEFAULT_AUILC_RANGE = (0.0, 1.0)
#: A rate this close to an end of the chosen range counts as inside it (rates are written with few decimals).
RATE_TOLERANCE = 1e-9
#: The (text, audio, vision) order of a cell's rates.
MODALITIES = ("text", "audio", "vision")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (without pulling in the tabulate package)."""
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def paper_scale(key: str, value_x100: float) -> float:
    return value_x100 / 100 if key in FRACTION_METRICS else value_x100


def fmt(key: str, value: float) -> str:
    return f"{value:.3f}" if key in FRACTION_METRICS else f"{value:.1f}"


def load_sweep(directory: Path) -> dict:
    directory = Path(directory)
    results_file = directory / "results.json"
    if not results_file.exists():
        raise UserError(f"{directory} holds no results.json; is it a results directory written by run.py?")
    summary = json.loads(results_file.read_text())
    if not summary.get("rates"):
        raise UserError(f"{results_file} has no finished cells yet")
    config = json.loads((directory / "config.json").read_text())["config"]
    summary["config"] = config
    summary.setdefault("model", "emt-dlfr")  # folders written before --model existed
    summary["family"] = "sims" if config.get("metric_set") == "sims" else "mosi"
    return summary


def title(variant: str) -> str:
    """The paper's name of a model or EMT variant (MulT, TFR-Net, EMT-DLFR, EMT-HLFR, ...)."""
    return MODEL_TITLES.get(variant, variant.upper())


def variant_labels(sweeps: list[dict], dirs: list[Path]) -> list[str]:
    """Paper names (EMT-DLFR, MulT, ...; a non-default fusion appended); directories that share one get their
    folder name appended."""
    names = [title(s.get("name", s["variant"])) for s in sweeps]
    return [f"{n} ({d.name})" if names.count(n) > 1 else n for n, d in zip(names, dirs)]


def paper_row_models(sweeps: list[dict]) -> list[str]:
    """Models whose published row ``--paper`` adds: those of the sweeps, and EMT-DLFR, in the tables' order."""
    present = {s["model"] for s in sweeps} | {"emt-dlfr"}
    return [m for m in MODEL_NAMES if m in present]


def equal_rate_points(summary: dict) -> list[tuple[float, dict, dict]]:
    points = [(info["rates"][0], info["mean"], info["std"]) for info in summary["rates"].values()
              if len(set(info["rates"])) == 1]
    return sorted(points, key=lambda p: p[0])


def rate_text(rate: float) -> str:
    return rate_tag((rate, rate, rate))


def check_auilc_range(auilc_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in auilc_range)
    if not (0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0) or lo >= hi:
        raise ConfigError(f"--auilc-range {lo:g} {hi:g}: expected two missing rates 0 <= LO < HI <= 1")
    return lo, hi


def is_default_range(auilc_range: tuple[float, float]) -> bool:
    return tuple(auilc_range) == DEFAULT_AUILC_RANGE


def auilc_over(summary: dict, auilc_range: tuple[float, float], where: Path) -> tuple[Optional[dict], list[float]]:
    """(AUILC row, rates it spans) of one sweep: over the default range the sweep's recorded row (the
    reference's, from 0.0; absent when the sweep lacks rate 0.0), over another one :func:`auilc_in_range`."""
    if is_default_range(auilc_range):
        return summary.get("auilc"), list(summary.get("auilc_rates", []))
    return auilc_in_range(summary, *check_auilc_range(auilc_range), where)


def auilc_in_range(summary: dict, lo: float, hi: float, where: Path) -> tuple[dict, list[float]]:
    """The reference's rule (seed means x100 rounded to 2 decimals, trapezoid, area rounded to 1 decimal) over
    the sweep's equal rates inside [lo, hi]; at least two are needed (else a ConfigError naming ``where``)."""
    points = [(r, m) for r, m, _ in equal_rate_points(summary) if lo - RATE_TOLERANCE <= r <= hi + RATE_TOLERANCE]
    if len(points) < 2:
        found = ", ".join(rate_text(r) for r, _ in points) or "none"
        raise ConfigError(f"--auilc-range {lo:g} {hi:g}: {where} has fewer than two swept rates in that range "
                          f"(found: {found}); the area needs at least two")
    rates = [r for r, _ in points]
    means = {k: [m[k] for _, m in points] for k in points[0][1]}
    return auilc_row(means, rates, from_zero=False), rates


def range_note(auilc_range: tuple[float, float], rates: dict[str, list[float]], paper: bool = False) -> str:
    """The header line naming a non-default AUILC range and the rates each sweep's area spans ('' by default);
    with ``paper`` it says that the published rows are left out."""
    if is_default_range(auilc_range):
        return ""
    lo, hi = auilc_range
    spans = {label: ", ".join(map(rate_text, r)) for label, r in rates.items()}
    if len(set(spans.values())) == 1:
        over = f"rates {next(iter(spans.values()))}"
    else:
        over = "; ".join(f"{label}: rates {span}" for label, span in spans.items())
    reference = f"{DEFAULT_AUILC_RANGE[0]:.1f}-{DEFAULT_AUILC_RANGE[1]:.1f}"
    left_out = f"; the paper's published rows, which are over {reference}, are left out" if paper else ""
    return f"AUILC over the missing rates in [{rate_text(lo)}, {rate_text(hi)}] ({over}), not the reference's {reference}{left_out}."


def auilc_table(sweeps: list[dict], labels: list[str], family: str, dataset: str, paper: bool,
                areas: Optional[list[Optional[dict]]] = None) -> pd.DataFrame:
    """One row per sweep (its AUILC, or ``areas[i]`` when given), then with ``paper`` the published rows."""
    rows = []
    for i, (summary, label) in enumerate(zip(sweeps, labels)):
        auc = summary.get("auilc") if areas is None else areas[i]
        row = {"Model": label}
        for name, keys in TABLE_COLUMNS[family]:
            row[name] = "/".join(fmt(k, paper_scale(k, auc[k])) if auc else "n/a" for k in keys)
        rows.append(row)
    if paper and dataset in PAPER_TABLE_ROWS:
        table = 7 if family == "sims" else 6
        for model in paper_row_models(sweeps):
            ref = PAPER_TABLE_ROWS[dataset][model]
            rows.append({"Model": f"{title(model)} (paper, Table {table})",
                         **{name: "/".join(fmt(k, ref[k]) for k in keys) for name, keys in TABLE_COLUMNS[family]}})
    return pd.DataFrame(rows)


def per_rate_tables(sweeps: list[dict], labels: list[str], family: str) -> tuple[str, pd.DataFrame]:
    long_rows, blocks = [], []
    for title, keys in TABLE_COLUMNS[family]:
        for key in keys:
            rates = sorted({p[0] for s in sweeps for p in equal_rate_points(s)})
            table = {"rate": [f"{r:.1f}" for r in rates]}
            for summary, label in zip(sweeps, labels):
                lookup = {r: (m[key], sd[key]) for r, m, sd in equal_rate_points(summary)}
                column = []
                for r in rates:
                    if r in lookup:
                        mean, std = (paper_scale(key, v) for v in lookup[r])
                        column.append(f"{fmt(key, mean)} ± {fmt(key, std)}")
                        long_rows.append({"variant": label, "rate": r, "metric": key, "mean": mean, "std": std})
                    else:
                        column.append("")
                table[label] = column
            blocks.append(f"### {key}\n\n" + markdown_table(pd.DataFrame(table)))
    return "\n\n".join(blocks) + "\n", pd.DataFrame(long_rows)


def plot_curves(sweeps: list[dict], labels: list[str], family: str, dataset: str, paper: bool, out: Path,
                auilc_range: tuple[float, float] = DEFAULT_AUILC_RANGE) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = CURVE_METRICS[family]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4))
    for ax, (title, key) in zip(axes, metrics):
        for summary, label in zip(sweeps, labels):
            points = equal_rate_points(summary)
            rates = [p[0] for p in points]
            ax.errorbar(rates, [p[1][key] for p in points], yerr=[p[2][key] for p in points],
                        marker="o", ms=3, capsize=2, label=label)
        if paper and key in PAPER_CURVES.get(dataset, {}):
            rates, values = PAPER_CURVES[dataset][key]
            ax.plot(rates, values, "k--", marker="x", lw=1,
                    label=f"EMT-DLFR, paper (read from Fig. {FIGURE_NUMBER.get(dataset, '?')})")
        if not is_default_range(auilc_range):
            ax.axvspan(*auilc_range, color="grey", alpha=0.12, lw=0)
        ax.set_title(f"{title} (x100)")
        ax.set_xlabel("missing rate")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    shaded = "" if is_default_range(auilc_range) else f" (AUILC over {rate_text(auilc_range[0])}-{rate_text(auilc_range[1])}, shaded)"
    fig.suptitle(f"{dataset}: test metrics against the missing rate{shaded}")
    fig.tight_layout()
    paths = []
    for suffix in ("png", "pdf", "svg"):
        path = out / f"curves.{suffix}"
        tmp = out / f".curves.tmp.{suffix}"
        with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text (searchable, editable)
            fig.savefig(tmp, dpi=150, format=suffix)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def default_out(dirs: list[Path]) -> Path:
    """``report/`` in the deepest folder holding all the sweeps (results/mosi/report for
    results/mosi/emt-dlfr/run_once and results/mosi/emt/run_once); beside the folder of a single sweep."""
    resolved = [d.resolve() for d in dirs]
    common = Path(os.path.commonpath(resolved))
    if common in resolved:  # one sweep (or one sweep inside another)
        common = resolved[0].parent
    return common / "report"


def modality_series(rates: list[Rates]) -> list[tuple[int, list[Rates]]]:
    """(modality index, cells' rates ordered by that modality's rate) for every setting of the other two
    rates under which at least two cells differ only in that modality's rate."""
    series = []
    for i in range(len(MODALITIES)):
        groups: dict[tuple[float, ...], list[Rates]] = {}
        for r in rates:
            groups.setdefault(r[:i] + r[i + 1:], []).append(r)
        series += [(i, sorted(members, key=lambda r: r[i])) for _, members in sorted(groups.items()) if len(members) > 1]
    return series


def per_modality_tables(dirs: list[Path], labels: list[str], family: str) -> tuple[str, pd.DataFrame]:
    """Markdown blocks (one per sweep, modality and fixed pair of other rates: a row per rate of the varied
    modality, a column per metric, mean ± std over seeds) and the long table; '' when no folder has any."""
    keys = [key for _, ks in TABLE_COLUMNS[family] for key in ks]
    headers = [name if len(ks) == 1 else f"{name} {key.split('_', 1)[0]}" for name, ks in TABLE_COLUMNS[family]
               for key in ks]
    blocks, long_rows = [], []
    for directory, label in zip(dirs, labels):
        cells = read_cells(directory)
        for i, members in modality_series(list(cells)):
            fixed = " and ".join(f"{MODALITIES[j]} {members[0][j]:g}" for j in range(len(MODALITIES)) if j != i)
            rows = []
            for rates in members:
                records = sorted(cells[rates], key=lambda r: r["seed"])
                stats = seed_stats(records, keys)
                row = {f"{MODALITIES[i]} rate": f"{rates[i]:g}"}
                for key, header in zip(keys, headers):
                    mean, std = paper_scale(key, stats["mean"][key]), paper_scale(key, stats["std"][key])
                    row[header] = f"{fmt(key, mean)} ± {fmt(key, std)}"
                    long_rows.append({"variant": label, "modality": MODALITIES[i], "rate_text": rates[0],
                                      "rate_audio": rates[1], "rate_vision": rates[2], "metric": key,
                                      "mean": mean, "std": std, "seeds": " ".join(str(r["seed"]) for r in records)})
                row["seeds"] = len(records)
                rows.append(row)
            blocks.append(f"## {label}: {MODALITIES[i]} missing, {fixed} fixed\n\n{markdown_table(pd.DataFrame(rows))}")
    return "\n\n".join(blocks), pd.DataFrame(long_rows)


def make_report(dirs: list[Path], out: Path | None = None, paper: bool = False,
                auilc_range: tuple[float, float] = DEFAULT_AUILC_RANGE) -> dict:
    """Write the tables and figures; return their paths and the Markdown of the AUILC table (with
    ``auilc_note`` naming a non-default AUILC range, and ``per_modality`` the per-modality tables' path or None)."""
    dirs = [Path(d) for d in dirs]
    auilc_range = check_auilc_range(auilc_range)
    sweeps = [load_sweep(d) for d in dirs]
    datasets = {s["dataset"] for s in sweeps}
    families = {s["family"] for s in sweeps}
    if len(families) > 1:
        raise UserError("cannot put SIMS and MOSI/MOSEI sweeps in one report (different metrics)")
    family, dataset = families.pop(), sorted(datasets)[0]
    labels = variant_labels(sweeps, dirs)
    spans = [auilc_over(s, auilc_range, d) for s, d in zip(sweeps, dirs)]  # a bad range fails before any write
    out = Path(out) if out else default_out(dirs)
    out.mkdir(parents=True, exist_ok=True)
    note = range_note(auilc_range, {label: rates for label, (_, rates) in zip(labels, spans)}, paper)
    auc = auilc_table(sweeps, labels, family, dataset, paper and not note, [area for area, _ in spans])
    auc_md = markdown_table(auc)
    rates_md, rates_long = per_rate_tables(sweeps, labels, family)
    atomic_write_text(out / "auilc.md", f"# AUILC on {dataset}\n\n{note + chr(10) * 2 if note else ''}{auc_md}\n")
    atomic_write_text(out / "auilc.csv", auc.to_csv(index=False))
    atomic_write_text(out / "per_rate.md", f"# Per-rate test metrics on {dataset} (mean ± std over seeds)\n\n{rates_md}")
    atomic_write_text(out / "per_rate.csv", rates_long.to_csv(index=False))
    modality_md, modality_long = per_modality_tables(dirs, labels, family)
    per_modality = None
    if modality_md:
        per_modality = out / "per_modality.md"
        atomic_write_text(per_modality, f"# Per-modality missing rates on {dataset} (mean ± std over seeds)\n\n"
                                        f"{modality_md}\n")
        atomic_write_text(out / "per_modality.csv", modality_long.to_csv(index=False))
    figures = plot_curves(sweeps, labels, family, dataset, paper, out, auilc_range)
    return {"out": out, "auilc_markdown": auc_md, "auilc_note": note, "figures": figures,
            "per_modality": per_modality}


def table_cells(auilc: dict | None, values_are_x100: bool, family: str) -> list[str]:
    """One dataset's cells of a comparison table row (``NOT_RUN`` without a sweep)."""
    cells = []
    for _, keys in TABLE_COLUMNS[family]:
        if auilc is None:
            cells.append(NOT_RUN)
        else:
            cells.append("/".join(fmt(k, paper_scale(k, auilc[k]) if values_are_x100 else auilc[k]) for k in keys))
    return cells


def paper_table(number: int, results: Path, run_name: str = "run_once", paper: bool = False,
                auilc_range: tuple[float, float] = DEFAULT_AUILC_RANGE) -> tuple[str, list[Path]]:
    """The paper's Table ``number`` (6: MOSI and MOSEI, 7: SIMS) from the sweeps under ``results``.

    Rows: MulT, TFR-Net and EMT-DLFR measured here (``<results>/<dataset>/<model>/<run_name>``), then with
    ``paper`` the published rows (not over a non-default ``auilc_range``, whose note then heads the table).
    Returns the Markdown and the sweep folders that were found.
    """
    auilc_range = check_auilc_range(auilc_range)
    if number not in PAPER_TABLES:
        raise UserError(f"--table {number}: the paper's comparison tables are {', '.join(map(str, PAPER_TABLES))}")
    datasets = PAPER_TABLES[number]
    family = "sims" if datasets == ("sims",) else "mosi"
    header = ["Model"] + [f"{ds.upper()} {name}" if len(datasets) > 1 else name
                          for ds in datasets for name, _ in TABLE_COLUMNS[family]]
    rows, found, spans = [], [], {}
    for model in MODEL_NAMES:
        cells = [title(model)]
        for dataset in datasets:
            folder = Path(results) / dataset / model / run_name
            area = None
            if (folder / "results.json").exists():
                area, spans[f"{dataset} {title(model)}"] = auilc_over(load_sweep(folder), auilc_range, folder)
                found.append(folder)
            cells += table_cells(area, True, family)
        rows.append(cells)
    note = range_note(auilc_range, spans, paper) if spans else ""
    if paper and not note:
        for model in MODEL_NAMES:
            cells = [f"{title(model)} (paper)"]
            for dataset in datasets:
                cells += table_cells(PAPER_TABLE_ROWS[dataset][model], False, family)
            rows.append(cells)
    table = markdown_table(pd.DataFrame(rows, columns=header))
    return (f"{note}\n\n{table}" if note else table), found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="*", type=Path, help="sweep directories written by run.py")
    parser.add_argument("--out", type=Path, help="where to write (default: report/ in the folder holding all the "
                                                  "dirs, or <results>/report)")
    parser.add_argument("--paper", action="store_true", help="overlay the paper's published values")
    parser.add_argument("--table", type=int, choices=sorted(PAPER_TABLES),
                        help="print the paper's Table 6 (MOSI, MOSEI) or 7 (SIMS) from the sweeps under --results")
    parser.add_argument("--results", type=Path, default=Path("results"), help="with --table: the results root")
    parser.add_argument("--run-name", default="run_once", help="with --table: the sweep folder under each model")
    parser.add_argument("--auilc-range", type=float, nargs=2, metavar=("LO", "HI"), default=DEFAULT_AUILC_RANGE,
                        help="AUILC over the swept rates in [LO, HI] (default 0.0 1.0, the reference's: every rate "
                             "from 0.0); e.g. 0.1 1.0 as the paper's captions, or 0.0 0.9")
    args = parser.parse_args(argv)
    auilc_range = check_auilc_range(args.auilc_range)
    if args.table is not None:
        if args.dirs:
            raise UserError("--table reads the sweeps under --results; give no directories with it")
        markdown, found = paper_table(args.table, args.results, args.run_name, args.paper, auilc_range)
        if not found:
            raise UserError(f"no sweep found under {args.results}/<dataset>/<model>/{args.run_name} for Table "
                            f"{args.table} (run the scripts first, e.g. MODEL=mult bash scripts/mosi/run_once.sh 0)")
        out = args.out or args.results / "report"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"table{args.table}.md", f"# Table {args.table} (AUILC)\n\n{markdown}\n")
        print(markdown)
        print(f"\nfrom {', '.join(map(str, found))}; written to {out / f'table{args.table}.md'}")
        return 0
    if not args.dirs:
        raise UserError("give the sweep directories to compare, or --table 6 / --table 7")
    report = make_report(args.dirs, args.out, args.paper, auilc_range)
    if report["auilc_note"]:
        print(report["auilc_note"] + "\n")
    print(report["auilc_markdown"])
    print(f"\ntables and figures in {report['out']} (curves: {report['figures'][0]})")
    if report["per_modality"]:
        print(f"per-modality tables (--diff-missing cells): {report['per_modality']}")
    return 0


if __name__ == "__main__":
    from utils.errors import cli_exit

    cli_exit(main)
