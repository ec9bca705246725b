"""Tiny but real versions of the five models: the CLI's `tiny` profile, seconds to train.

Also runnable by hand: `python -m tests.tiny_models DIR` fills DIR with them (as does
`python -m training all --profile tiny --models-dir DIR`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from training import cifar10, export, imdb, inception_v3, mnist

MNIST = mnist.PROFILES["tiny"]
CIFAR = cifar10.PROFILES["tiny"]
IMDB = imdb.PROFILES["tiny"]


def train_all() -> dict[str, export.Export]:
    base = cifar10.train(CIFAR, verbose=0)
    exports = [
        mnist.train(MNIST, verbose=0),
        base,
        cifar10.train_transfer(cifar10.TRANSFER_PROFILES["tiny"], base.model, verbose=0),
        imdb.train(IMDB, verbose=0),
        inception_v3.train(inception_v3.PROFILES["tiny"], weights=None),
    ]
    return {e.name: e for e in exports}


def export_all(models_dir: Path, exports: dict[str, export.Export]) -> dict[str, Path]:
    return {name: export.write(e, models_dir) for name, e in exports.items()}


if __name__ == "__main__":
    for name, path in export_all(Path(sys.argv[1]), train_all()).items():
        print(name, path)
