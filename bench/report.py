"""What a benchmark hands the runner: tables to print, a figure to plot, and its raw data."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]

    def render(self) -> str:
        cells = [[_cell(value) for value in row] for row in self.rows]
        widths = [
            max(len(column), *(len(row[i]) for row in cells)) if cells else len(column)
            for i, column in enumerate(self.columns)
        ]
        lines = [f"### {self.title}", ""]
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)) + " |"
        )
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in cells:
            lines.append(
                "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
            )
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class Figure:
    """Panels side by side over one x axis: each series gives a value per panel at each x.

    `points[series]` is a list of {"x": …, <panel key>: …}; `panels` is (key, y label, log?).
    """

    title: str
    x_label: str
    panels: list[tuple[str, str, bool]]
    points: dict[str, list[dict[str, float]]]


@dataclass
class Report:
    name: str
    title: str
    tables: list[Table]
    figure: Figure | None = None
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        parts = [f"## {self.title}", ""]
        for table in self.tables:
            parts += [table.render(), ""]
        parts += [f"- {note}" for note in self.notes]
        return "\n".join(parts)

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        written = [directory / f"{self.name}.json"]
        written[0].write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        if self.figure is not None:
            written.append(plot(self.figure, directory / f"{self.name}.png"))
        return written


def plot(figure: Figure, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(figure.panels), figsize=(6 * len(figure.panels), 4.2))
    axes = list(axes) if len(figure.panels) > 1 else [axes]
    for axis, (key, label, log) in zip(axes, figure.panels, strict=True):
        for series, points in figure.points.items():
            shown = [p for p in points if key in p and not math.isnan(p[key])]
            if shown:
                axis.plot(
                    [p["x"] for p in shown], [p[key] for p in shown], marker="o", label=series
                )
        axis.set_xlabel(figure.x_label)
        axis.set_ylabel(label)
        if log:
            axis.set_yscale("log")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
    fig.suptitle(figure.title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
