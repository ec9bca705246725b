"""`python -m training report`: what the exported models achieved, as docs/models.json and
docs/MODELS.md, written from the exports' own metrics.json and training_history.png.

    python -m training report --models-dir models --models-dir /tmp/models-full [--docs docs]

For each model directory, the highest version of every model is read; its profile, the
command that made it, data sizes, epochs (and the epoch kept), validation and test accuracy
and wall time go in one row per model and profile. Validation accuracy is what early stopping
and checkpoints chose by (the figure the books report); test accuracy is measured on data no
callback saw.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from training.export import latest_version

FIELDS = ("model", "profile", "version", "train_size", "val_size", "test_size", "epochs",
          "fine_tune_epochs", "epochs_planned", "best_epoch", "val_accuracy", "test_accuracy",
          "wall_time_s", "weights", "command")
# the books' figures, validation accuracy (see README "The models")
BOOK_TARGETS = {"mnist": 0.98, "cifar10": 0.81, "cifar10_transfer": 0.965,
                "imdb_sentiment": 0.85}
# what the quick profile must still reach: clearly better than chance (10%, 12.5%, 50%, 50%)
QUICK_FLOORS = {"mnist": 0.90, "cifar10": 0.35, "cifar10_transfer": 0.70,
                "imdb_sentiment": 0.70}


def collect(models_dirs: list[Path]) -> list[dict]:
    """One row per model and profile, from the highest version in each directory."""
    rows = []
    for models_dir in models_dirs:
        for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
            version = latest_version(model_dir)
            metrics_file = version / "metrics.json" if version else None
            if metrics_file is None or not metrics_file.exists():
                continue
            metrics = json.loads(metrics_file.read_text())
            row = {key: metrics.get(key) for key in FIELDS}
            row.update(model=model_dir.name, version=int(version.name),
                       profile=metrics.get("profile") or "unknown",
                       plot=version / "training_history.png")
            rows.append(row)
    return sorted(rows, key=lambda r: (r["model"], r["profile"]))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def markdown(rows: list[dict], plots: dict[tuple[str, str], str]) -> str:
    lines = ["# Models", "", "Written by `python -m training report` from each export's "
             "`metrics.json`. Validation accuracy is the figure early stopping and the kept "
             "checkpoint were chosen by (the books report this one); test accuracy is measured "
             "on data no callback saw. The full profile is held to the books' figures; the "
             "quick one (what `make serve` trains, all five within 5 minutes on 2 cores) to a "
             "floor clearly above chance (mnist 10%, cifar10 12.5%, cifar10_transfer and "
             "imdb_sentiment 50%).", "",
             "| model | profile | train rows | epochs (kept) | validation acc | test acc "
             "| book (full) or floor (quick) | minutes | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = {"full": BOOK_TARGETS, "quick": QUICK_FLOORS}.get(r["profile"], {}).get(
            r["model"])
        met = "" if target is None or r["val_accuracy"] is None else (
            " met" if r["val_accuracy"] >= target else " missed")
        kept = f" ({r['best_epoch']})" if r["best_epoch"] else ""
        minutes = "-" if r["wall_time_s"] is None else f"{r['wall_time_s'] / 60:.1f}"
        epochs = f"{r['epochs'] or '-'}" + (f" + {r['fine_tune_epochs']} fine-tuning"
                                             if r["fine_tune_epochs"] else "")
        note = ("random weights: no ImageNet weights file was found, predictions meaningless"
                if r["weights"] == "random" else "")
        lines.append(f"| {r['model']} | {r['profile']} | {r['train_size'] or '-'} | "
                     f"{epochs}{kept} | {_percent(r['val_accuracy'])} | "
                     f"{_percent(r['test_accuracy'])} | "
                     f"{_percent(target) if target else '-'}{met} | {minutes} | {note} |")
    lines += ["", "Commands:", ""]
    lines += [f"- {r['model']} ({r['profile']}): `{r['command']}`" for r in rows if r["command"]]
    for (model, profile), picture in plots.items():
        lines += ["", f"## {model}, {profile} profile", "", f"![{model} {profile}]({picture})"]
    return "\n".join(lines) + "\n"


def with_earlier_rows(rows: list[dict], docs: Path) -> list[dict]:
    """The new rows, and the earlier report's rows for the models and profiles not run again
    (a quick run does not drop the full profile's hours-old results), with their plots."""
    earlier_file = docs / "models.json"
    if not earlier_file.exists():
        return rows
    fresh = {(r["model"], r["profile"]) for r in rows}
    kept = [{**r, "plot": docs / "models" / f"{r['model']}-{r['profile']}.png"}
            for r in json.loads(earlier_file.read_text())
            if (r["model"], r["profile"]) not in fresh]
    return sorted(rows + kept, key=lambda r: (r["model"], r["profile"]))


def write(rows: list[dict], docs: Path) -> None:
    pictures = docs / "models"
    pictures.mkdir(parents=True, exist_ok=True)
    plots = {}
    for row in rows:
        plot = row.pop("plot")
        name = f"{row['model']}-{row['profile']}.png"
        if plot.exists():
            if plot.resolve() != (pictures / name).resolve():
                shutil.copyfile(plot, pictures / name)
            plots[(row["model"], row["profile"])] = f"models/{name}"
    (docs / "models.json").write_text(json.dumps(rows, indent=2) + "\n")
    (docs / "MODELS.md").write_text(markdown(rows, plots))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, action="append", required=True,
                        help="a model repository (repeat: one per profile)")
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    rows = collect(args.models_dir)
    if not rows:
        parser.error("no exported model with a metrics.json found")
    write(with_earlier_rows(rows, args.docs), args.docs)
    print(f"wrote {args.docs / 'models.json'} and {args.docs / 'MODELS.md'} ({len(rows)} rows)")
    return 0
