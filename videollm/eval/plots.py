"""PNG figures of evaluation results (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars(values: Mapping[str, float], path: str | Path, title: str, ylabel: str = "accuracy",
         target: float | None = None) -> Path:
    """One bar per key (values in [0, 1]), an optional dashed target line."""
    plt = _plt()
    keys = list(values)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(keys) + 1.5), 3.5), dpi=100)
    ax.bar(keys, [values[k] for k in keys], color="#4C72B0")
    for i, k in enumerate(keys):
        ax.text(i, values[k] + 0.02, f"{values[k]:.2f}", ha="center", fontsize=8)
    if target is not None:
        ax.axhline(target, ls="--", color="#C44E52", lw=1, label=f"target {target:.2f}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def grouped_bars(table: Mapping[str, Mapping[str, float]], path: str | Path, title: str) -> Path:
    """Rows of ``table`` as groups, columns as bars within a group (missing cells are skipped)."""
    plt = _plt()
    rows = list(table)
    cols = sorted({c for r in rows for c in table[r]})
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(cols) + 2), 3.8), dpi=100)
    for i, r in enumerate(rows):
        xs = [j + i * width for j, c in enumerate(cols) if c in table[r]]
        ax.bar(xs, [table[r][c] for c in cols if c in table[r]], width, label=r)
    ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(cols))], cols, rotation=30, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def heatmap(matrix: Sequence[Sequence[float]], rows: Sequence[str], cols: Sequence[str], path: str | Path,
            title: str, xlabel: str, ylabel: str) -> Path:
    """Annotated heatmap of values in [0, 1]."""
    plt = _plt()
    import numpy as np

    data = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(cols) + 2), max(2.5, 0.5 * len(rows) + 1.5)), dpi=100)
    im = ax.imshow(data, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, "—" if np.isnan(data[i, j]) else f"{data[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, fontsize=8, rotation=30)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
