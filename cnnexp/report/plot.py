"""Plot one scalar's curve for every run of a sweep into a PNG (matplotlib, no GUI backend)."""

from __future__ import annotations

from pathlib import Path

from cnnexp.report.runs import Run

MAX_LEGEND = 20  # beyond this many runs the legend would hide the plot


def curve(run: Run, tag: str) -> tuple[list[float], list[float], str]:
    """The x and y values of `tag` for a run, and the x-axis name: the epoch (1-based) when the run logged
    Lightning's `epoch` scalar at every one of the tag's steps, else the global step."""
    points = run.scalars.get(tag, [])
    epochs = run.epochs(tag)
    if epochs is not None:
        return [float(e) for e in epochs], [v for _, _, v in points], "epoch"
    return [float(s) for s, _, _ in points], [v for _, _, v in points], "step"


def plot_curves(runs: list[Run], tag: str, path: Path, labels: dict[str, str] | None = None) -> int:
    """Draw `tag` against epoch (or step) for every run that logged it and save a PNG at `path`.

    Args:
        runs: the runs, drawn in this order.
        tag: a scalar tag such as `val/acc`.
        path: where to write the PNG.
        labels: legend text per run name (default: the run name).

    Returns:
        How many runs had a curve to draw (a figure saying "no data" is written when none had).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    drawn, x_name = 0, "step"
    for run in runs:
        xs, ys, x_axis = curve(run, tag)
        if not xs:
            continue
        x_name = x_axis
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=(labels or {}).get(run.name, run.name))
        drawn += 1
    if drawn == 0:
        ax.text(0.5, 0.5, f"no run logged {tag}", ha="center", va="center", transform=ax.transAxes)
    elif drawn <= MAX_LEGEND:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if x_name == "epoch":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_name)
    ax.set_ylabel(tag)
    ax.set_title(f"{tag} of {drawn} run(s)")
    ax.grid(alpha=0.3)
    fig.savefig(path, bbox_inches="tight")  # widened to fit the legend on the right
    return drawn
