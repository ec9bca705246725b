"""`python -m training.cache OFFLINE_DIR`: fill Keras' cache with links to an offline copy.

Keras writes into its cache (it extracts archives there), so the cache must be writable while
the offline copy may be read-only: folders are created (writable), files are symlinked.
Existing entries are kept, so it is safe to run again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from training.data import keras_home


def link_offline_cache(source: Path, cache: Path) -> int:
    """Mirror `source` into `cache` as writable folders of symlinks; returns links made."""
    if not source.is_dir():
        raise FileNotFoundError(f"offline data folder {source} does not exist")
    made = 0
    for path in sorted(source.rglob("*")):
        target = cache / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())
            made += 1
    return made


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m training.cache OFFLINE_DIR   (links into $KERAS_HOME)",
              file=sys.stderr)
        return 2
    source, cache = Path(argv[0]), keras_home()
    try:
        made = link_offline_cache(source, cache)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Keras cache {cache}: {made} new links to {source.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
