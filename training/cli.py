"""`python -m training <model|all> --profile quick|full`: train and export into models/."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import keras

from training import cifar10, export, imdb, inception_v3, mnist
from training.data import DataUnavailable
from training.report import summary_table

MODELS = ("mnist", "cifar10", "cifar10_transfer", "imdb_sentiment", "inception_v3")
PROFILES = ("quick", "full", "tiny")
log = logging.getLogger("training")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train and export SavedModels into models/<name>/<version>/.")
    parser.add_argument("model", choices=(*MODELS, "all"),
                        help="which model to build; 'all' builds the five in order "
                             "(`python -m training report --help`: the results as docs)")
    parser.add_argument("--profile", choices=PROFILES, default="quick",
                        help="quick: data subsets, few epochs (minutes on a CPU); "
                             "full: the books' schedules (GPU); tiny: seconds, answers near "
                             "chance (a smoke test of the pipeline, the test suite's models)")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"),
                        help="the model repository (default: models)")
    parser.add_argument("--data", type=Path,
                        help="local data instead of Keras' cache: mnist.npz; the CIFAR-10 "
                             "folder with train/ and test/ class folders; the aclImdb folder; "
                             "the InceptionV3 ImageNet weights .h5")
    parser.add_argument("--missing-only", action="store_true",
                        help="skip models that already have a version")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    if args.model == "all" and (args.data or args.version):
        parser.error("--data and --version apply to one model, not to 'all'")
    return args


def train_one(name: str, profile: str, data: Path | None, verbose: int,
              models_dir: Path, trained: dict[str, keras.Model]) -> export.Export:
    """Train (or build) one model; `trained` holds this run's models for transfer learning."""
    if name == "mnist":
        return mnist.train(mnist.PROFILES[profile], data, verbose)
    if name == "cifar10":
        return cifar10.train(cifar10.PROFILES[profile], data, verbose)
    if name == "cifar10_transfer":
        base = trained.get("cifar10") or _load_base(models_dir)
        return cifar10.train_transfer(cifar10.TRANSFER_PROFILES[profile], base, data, verbose)
    if name == "imdb_sentiment":
        return imdb.train(imdb.PROFILES[profile], data, verbose)
    if name == "inception_v3":
        return inception_v3.train(inception_v3.PROFILES[profile], data, verbose)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def _load_base(models_dir: Path) -> keras.Model:
    latest = export.latest_version(models_dir / cifar10.NAME)
    if latest is None or not (latest / "model.keras").exists():
        raise DataUnavailable(f"cifar10_transfer starts from a trained cifar10, and "
                              f"{models_dir / cifar10.NAME} has none: run "
                              "`python -m training cifar10` first.")
    log.info("transfer learning from %s", latest)
    return keras.models.load_model(latest / "model.keras")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        from training.model_report import main as report

        return report(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # "Assets written to ..."
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    verbose = 1 if sys.stdout.isatty() else 2  # progress bars on a terminal, lines in logs
    names = MODELS if args.model == "all" else (args.model,)
    rows, failures, trained = [], [], {}
    for name in names:
        if args.missing_only and export.versions(args.models_dir / name):
            log.info("%s: a version exists, skipped (--missing-only)", name)
            continue
        print(f"\n== {name} ({args.profile} profile) ==", flush=True)
        try:
            result = train_one(name, args.profile, args.data, verbose, args.models_dir, trained)
            result.metrics["profile"] = args.profile
            result.metrics["command"] = "python -m training " + shlex.join(argv)
            path = export.write(result, args.models_dir, args.version)
        except (DataUnavailable, FileExistsError, ValueError) as err:
            print(f"error: {name}: {err}", file=sys.stderr, flush=True)
            failures.append(name)
            continue
        trained[name] = result.model
        rows.append({**result.metrics, "model": name, "version": int(path.name),
                     "path": str(path)})
    if rows:
        print("\n" + summary_table(rows), flush=True)
        for row in rows:
            if "warning" in row:
                print(f"\n{row['model']}: {row['warning']}", flush=True)
    if failures:
        print(f"\nfailed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0
