"""What a trainer working beside the server says it is building: `<model_dir>/.training.json`.

`make serve` starts the server before the models exist and trains them beside it
(`python -m training.serve`); the server loads each one when its version folder appears, and
meanwhile shows it as being trained in `GET /models` and on its page. Any trainer may write
the file (atomically: a temporary file renamed over it):

    {"updated": 1764860000.5,                  # Unix time of the last write (a heartbeat)
     "models": {"cifar10": {"state": "training", "epoch": 3, "epochs": 6},
                "cifar10_transfer": {"state": "queued"},
                "imdb_sentiment": {"state": "failed", "error": "..."}}}

A file not written for STALE_S seconds is ignored (its trainer is gone). The file is hidden,
so the repository scan never takes it for a model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

STATUS_FILE = ".training.json"
STALE_S = 60.0
STATES = ("queued", "training", "failed")


def read(model_dir: Path, now: float | None = None) -> dict[str, dict]:
    """Model name -> what its trainer says, for a fresh, well-formed file; else empty."""
    try:
        status = json.loads((model_dir / STATUS_FILE).read_text())
        updated = float(status["updated"])
        models = status["models"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if (time.time() if now is None else now) - updated > STALE_S or not isinstance(models, dict):
        return {}
    return {str(name): _clean(entry) for name, entry in models.items()
            if isinstance(entry, dict) and entry.get("state") in STATES}


def _clean(entry: dict) -> dict:
    """Only the documented keys, with their types: the file is another program's output."""
    clean: dict = {"state": entry["state"]}
    for key in ("epoch", "epochs"):
        if isinstance(entry.get(key), int):
            clean[key] = entry[key]
    if isinstance(entry.get("error"), str):
        clean["error"] = entry["error"][:500]
    return clean
