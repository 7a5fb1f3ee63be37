"""The report's PNGs, drawn with matplotlib's Agg backend (no display; `Figure` objects, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

STATUS_COLORS = {
    "AVAILABLE": "#2ca02c", "CHARGING": "#1f77b4", "RESERVED": "#17becf", "BLOCKED": "#bcbd22",
    "INOPERATIVE": "#ff7f0e", "OUTOFORDER": "#d62728", "UNKNOWN": "#7f7f7f", "PLANNED": "#9467bd", "REMOVED": "#2b2b2b",
}
DPI = 100


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _group(frame: pd.DataFrame) -> pd.Series:
    return frame["country_code"] + "/" + frame["party_id"] + " · " + frame["source"]


def completeness(frame: pd.DataFrame, path: Path) -> Path:
    """Heatmap: CPO/source (rows) x AFIR element (columns), cell = share of objects carrying it."""
    if frame.empty:
        fig = Figure(figsize=(6, 2))
        _empty(fig.add_subplot(), "no published locations")
        return _save(fig, path)
    frame = frame.assign(group=_group(frame), column=frame["object"] + "." + frame["element"])
    columns = list(dict.fromkeys(frame["column"]))
    grid = frame.pivot_table(index="group", columns="column", values="share", aggfunc="first").reindex(columns=columns)
    fig = Figure(figsize=(max(6.0, 0.45 * len(columns) + 2), max(2.0, 0.5 * len(grid) + 2)))
    ax = fig.add_subplot()
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(grid)), list(grid.index), fontsize=8)
    if grid.size <= 600:
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="share of objects with the element")
    ax.set_title("AFIR data element completeness per CPO and source")
    return _save(fig, path)


def timeliness(delays: pd.DataFrame, path: Path) -> Path:
    """Cumulative distribution of source change -> NDW accepted, dynamic and static, with the targets."""
    fig = Figure(figsize=(11, 4))
    for i, (data_class, target, label) in enumerate((("dynamic", 60.0, "1 min"), ("static", 86_400.0, "24 h"))):
        ax = fig.add_subplot(1, 2, i + 1)
        part = delays[(delays["data_class"] == data_class) & delays["delay_seconds"].notna()] if not delays.empty else delays
        if part.empty:
            _empty(ax, f"no accepted {data_class} pushes")
            ax.set_title(f"{data_class} ({'status PATCH' if data_class == 'dynamic' else 'PUT'})")
            continue
        part = part.assign(group=_group(part))
        for group, rows in part.groupby("group"):
            values = np.sort(np.maximum(rows["delay_seconds"].to_numpy(dtype=float), 0.1))
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=str(group))
        ax.axvline(target, color="red", linestyle="--", label=f"target {label}")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("delay, source change -> NDW accepted (s)")
        ax.set_ylabel("share of pushes")
        ax.set_title(f"{data_class} ({'status PATCH' if data_class == 'dynamic' else 'PUT'})")
        ax.legend(fontsize=7)
    return _save(fig, path)


def reliability(frame: pd.DataFrame, path: Path) -> Path:
    """Histogram of the per-EVSE working share, rapid chargers apart, with the 99 % target."""
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    shares = frame.dropna(subset=["working_share"]) if not frame.empty else frame
    if shares.empty:
        _empty(ax, "no status history in the window")
        return _save(fig, path)
    bins = [i / 40 for i in range(41)]
    ax.hist([shares.loc[~shares["rapid"], "working_share"], shares.loc[shares["rapid"], "working_share"]], bins=bins,
            stacked=True, label=["< 50 kW", "rapid (>= 50 kW)"], color=["#1f77b4", "#ff7f0e"])
    ax.axvline(0.99, color="red", linestyle="--", label="99 % (rapid target)")
    ax.set_xlabel("share of in-service time in AVAILABLE/CHARGING/RESERVED")
    ax.set_ylabel("EVSEs")
    ax.set_title("EVSE reliability over the window")
    ax.legend(fontsize=8)
    return _save(fig, path)


def timeline(frame: pd.DataFrame, location_id: str | None, path: Path) -> Path:
    """One bar per EVSE of the location, coloured by status over time."""
    evses = list(dict.fromkeys(frame["evse_uid"])) if not frame.empty else []
    fig = Figure(figsize=(11, max(2.0, 0.5 * len(evses) + 1.5)))
    ax = fig.add_subplot()
    if not evses:
        _empty(ax, f"no status history for location {location_id}" if location_id else "no status history")
        return _save(fig, path)
    seen: set[str] = set()
    for row in frame.itertuples(index=False):
        start = mdates.date2num(pd.Timestamp(row.period_start).to_pydatetime())
        end = mdates.date2num(pd.Timestamp(row.period_end).to_pydatetime())
        status = str(row.status)
        ax.broken_barh([(start, end - start)], (evses.index(row.evse_uid) - 0.4, 0.8),
                       color=STATUS_COLORS.get(status, "#cccccc"), label=None if status in seen else status)
        seen.add(status)
    ax.set_yticks(range(len(evses)), evses, fontsize=8)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    fig.autofmt_xdate()
    ax.set_title(f"EVSE status timeline, location {location_id}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def coverage(frame: pd.DataFrame, path: Path) -> Path:
    """Stacked area: EVSEs per status over time."""
    fig = Figure(figsize=(11, 4))
    ax = fig.add_subplot()
    if frame.empty:
        _empty(ax, "no status history in the window")
        return _save(fig, path)
    grid = frame.pivot_table(index="sampled_at", columns="status", values="evses", aggfunc="sum", fill_value=0).sort_index()
    order = [s for s in STATUS_COLORS if s in grid.columns] + [s for s in grid.columns if s not in STATUS_COLORS]
    times = [pd.Timestamp(t).to_pydatetime() for t in grid.index]
    ax.stackplot(times, *[grid[s].to_numpy() for s in order], labels=order,
                 colors=[STATUS_COLORS.get(s, "#cccccc") for s in order])
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    ax.set_ylabel("EVSEs")
    ax.set_title("EVSEs by status over time")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)
