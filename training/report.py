"""Training reports: the history plot saved with each export and the final summary table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, training vs validation, as in the books' plots."""
    panels = [m for m in ("loss", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], panels, strict=True):
        epochs = range(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], "o-", label=f"training {metric}")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s-", label=f"validation {metric}")
        ax.set_xlabel("epoch")
        ax.set_title(f"{title}: {metric}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def summary_table(rows: Sequence[dict]) -> str:
    """A fixed-width table of what each exported model achieved."""
    columns = [("model", "model"), ("version", "version"), ("train", "train_size"),
               ("val", "val_size"), ("epochs", "epochs"), ("val acc", "val_accuracy"),
               ("val loss", "val_loss"), ("seconds", "wall_time_s"), ("path", "path")]

    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) and key != "wall_time_s" else (
            f"{value:.1f}" if isinstance(value, float) else str(value))

    table = [[title for title, _ in columns]]
    table += [[cell(row, key) for _, key in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
