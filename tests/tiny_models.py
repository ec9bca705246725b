"""Tiny but real versions of the five models: the same code paths as the CLI, seconds to train.

Also runnable by hand: `python -m tests.tiny_models DIR` fills DIR with them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from training import cifar10, export, imdb, inception_v3, mnist

MNIST = mnist.Profile(train_size=2_000, val_size=500, epochs=1)
CIFAR = cifar10.Profile(train_per_class=40, test_per_class=10, epochs=1, batch_size=32)
IMDB = imdb.Profile(train_per_class=100, test_per_class=20, epochs=1, maxlen=80)


def train_all() -> dict[str, export.Export]:
    base = cifar10.train(CIFAR, verbose=0)
    exports = [
        mnist.train(MNIST, verbose=0),
        base,
        cifar10.train_transfer(CIFAR, base.model, verbose=0),
        imdb.train(IMDB, verbose=0),
        inception_v3.train(inception_v3.Profile(), weights=None),
    ]
    return {e.name: e for e in exports}


def export_all(models_dir: Path, exports: dict[str, export.Export]) -> dict[str, Path]:
    return {name: export.write(e, models_dir) for name, e in exports.items()}


if __name__ == "__main__":
    for name, path in export_all(Path(sys.argv[1]), train_all()).items():
        print(name, path)
