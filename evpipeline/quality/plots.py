"""The report's PNGs, drawn with matplotlib's Agg backend (no display; `Figure` objects, no pyplot state).

Each chart is built by a `*_figure` function (the tests read its texts) and saved by the function of
the chart's name. Every chart says what it covers and as of when (`Window`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, PercentFormatter

STATUS_COLORS = {
    "AVAILABLE": "#2ca02c",
    "CHARGING": "#1f77b4",
    "RESERVED": "#17becf",
    "BLOCKED": "#bcbd22",
    "INOPERATIVE": "#ff7f0e",
    "OUTOFORDER": "#d62728",
    "UNKNOWN": "#7f7f7f",
    "PLANNED": "#9467bd",
    "REMOVED": "#2b2b2b",
}
DPI = 100
TIMELINESS_DEFINITION = (
    "delay = NDW accepted (our clock) - change observable to us: the source's change time with the "
    "provider's measured clock skew taken off,\nor our recording of it when that time is unusable (a first "
    "publication; a source time after our recording; an unchanged source). Never negative."
)
NOT_YET_KNOWN = "no status known yet"


@dataclass(frozen=True)
class Window:
    """What a chart covers: the report's window and scope, printed on it."""

    start: datetime
    end: datetime
    scope: str = ""  # e.g. "public points in NLD"

    @property
    def as_of(self) -> str:
        return f"as of {self.end:%Y-%m-%d %H:%M} UTC"

    @property
    def span(self) -> str:
        """`2026-11-07 to 2026-12-07 (30 days), as of 2026-12-07 04:40 UTC`."""
        days = (self.end - self.start).total_seconds() / 86400
        return f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} ({days:g} days), {self.as_of}"


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


def completeness_figure(frame: pd.DataFrame, window: Window) -> Figure:
    """Heatmap: CPO/source (rows) x AFIR element (columns), cell = share of objects carrying it."""
    if frame.empty:
        fig = Figure(figsize=(6, 2))
        ax = fig.add_subplot()
        _empty(ax, "no published locations")
        ax.set_title(f"AFIR data element completeness, {window.as_of}")
        return fig
    frame = frame.assign(group=_group(frame), column=frame["object"] + "." + frame["element"])
    columns = list(dict.fromkeys(frame["column"]))
    grid = frame.pivot_table(index="group", columns="column", values="share", aggfunc="first").reindex(
        columns=columns
    )
    values = grid.to_numpy(dtype=float)
    fig = Figure(figsize=(max(8.0, 0.62 * len(columns) + 3), max(3.0, 0.55 * len(grid) + 2.5)))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=50, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(len(grid)), list(grid.index), fontsize=9)
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(grid)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    if values.size <= 900:
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):  # dark text on the light middle of the scale, white on its dark ends
                ax.text(
                    j,
                    i,
                    f"{value:.0%}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if 0.2 <= value <= 0.85 else "white",
                )
    fig.colorbar(image, ax=ax, label="share of objects with the element", format=PercentFormatter(1.0))
    ax.set_title(f"AFIR data element completeness per CPO and source, {window.as_of}")
    return fig


def completeness(frame: pd.DataFrame, path: Path, window: Window) -> Path:
    return _save(completeness_figure(frame, window), path)


_PANELS = (
    ("dynamic", "change", "status PATCHes", 60.0, "1 min"),
    ("static", "change", "PUTs of changes", 86_400.0, "24 h"),
    ("static", "first", "first publications (PUT)", 86_400.0, "24 h"),
)


def _clock(rows: pd.DataFrame) -> str:
    """The provider clock skew taken off these pushes' source times (median), for a legend entry."""
    used = rows.loc[
        rows["clock_note"].isna() if "clock_note" in rows else rows.index, "clock_skew_seconds"
    ].dropna()
    if len(used):
        return f"clock {used.median():+.0f} s"
    return "clock measured, not used" if rows["clock_skew_seconds"].notna().any() else "clock not measured"


def timeliness_figure(delays: pd.DataFrame, window: Window) -> Figure:
    """Cumulative distribution of change observable -> NDW accepted: status PATCHes, PUTs of changes and
    first publications apart, each with its target; the provider clock skew applied in each legend entry."""
    fig = Figure(figsize=(15, 5.2))
    for i, (data_class, publication, label, target, target_label) in enumerate(_PANELS):
        ax = fig.add_subplot(1, len(_PANELS), i + 1)
        title = f"{data_class}: {label}"
        part = delays
        if not part.empty:
            part = part[
                (part["data_class"] == data_class)
                & (part["publication"] == publication)
                & part["delay_seconds"].notna()
            ]
        if part.empty:
            _empty(ax, f"no accepted {label}")
            ax.set_title(title)
            continue
        part = part.assign(group=_group(part))
        for group, rows in part.groupby("group"):
            values = np.sort(np.maximum(rows["delay_seconds"].to_numpy(dtype=float), 0.1))
            ax.step(
                values,
                np.arange(1, len(values) + 1) / len(values),
                where="post",
                label=f"{group} ({len(values)}{'' if publication == 'first' else ', ' + _clock(rows)})",
            )
        ax.axvline(target, color="red", linestyle="--", label=f"target {target_label}")
        ax.set_xscale("log")
        ax.set_xlim(0.1, max(10 * target, 2 * float(part["delay_seconds"].max())))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("delay, change observable to us -> NDW accepted (s)")
        ax.set_ylabel("share of pushes")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"NDW timeliness per CPO and source, {window.span}", fontsize=12)
    fig.text(0.005, 0.005, TIMELINESS_DEFINITION, ha="left", va="bottom", fontsize=7.5, color="#333333")
    fig.subplots_adjust(bottom=0.24, top=0.86, wspace=0.25)
    return fig


def timeliness(delays: pd.DataFrame, path: Path, window: Window) -> Path:
    return _save(timeliness_figure(delays, window), path)


def reliability_figure(frame: pd.DataFrame, window: Window) -> Figure:
    """Histogram of the per-EVSE working share (rapid chargers apart) on a 0-100 % axis with the 99 %
    target."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    title = f"EVSE reliability, {window.scope or 'all EVSEs'}, {window.span}"
    shares = frame.dropna(subset=["working_share"]) if not frame.empty else frame
    if shares.empty:
        _empty(ax, "no status history in the window")
        ax.set_title(title)
        return fig
    bins = [i / 40 for i in range(41)]
    ax.hist(
        [shares.loc[~shares["rapid"], "working_share"], shares.loc[shares["rapid"], "working_share"]],
        bins=bins,
        stacked=True,
        label=["< 50 kW", "rapid (>= 50 kW)"],
        color=["#1f77b4", "#ff7f0e"],
    )
    ax.axvline(0.99, color="red", linestyle="--", label="target for rapid chargers: 99 % of in-service time")
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of in-service time in AVAILABLE/CHARGING/RESERVED (per EVSE)")
    ax.set_ylabel("EVSEs")
    below = int(shares["below_target"].sum())
    ax.set_title(
        f"{title}\n{len(shares)} EVSEs, {int(shares['rapid'].sum())} rapid, {below} rapid below the target",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left")
    return fig


def reliability(frame: pd.DataFrame, path: Path, window: Window) -> Path:
    return _save(reliability_figure(frame, window), path)


def timeline_figure(frame: pd.DataFrame, location_id: str | None, window: Window) -> Figure:
    """One bar per EVSE of the location (named by its EVSE id), coloured by status over time."""
    frame = frame.assign(label=frame["evse_id"].fillna(frame["evse_uid"])) if not frame.empty else frame
    evses = list(dict.fromkeys(frame["label"])) if not frame.empty else []
    fig = Figure(figsize=(11, max(2.5, 0.45 * len(evses) + 2)))
    ax = fig.add_subplot()
    if not evses:
        _empty(ax, f"no status history for location {location_id}" if location_id else "no status history")
        ax.set_title(f"EVSE status timeline, {window.span}", fontsize=10)
        return fig
    first = frame.iloc[0]
    name = (
        first["location_name"]
        if isinstance(first["location_name"], str) and first["location_name"]
        else location_id
    )
    seen: set[str] = set()
    for row in frame.itertuples(index=False):
        start = mdates.date2num(pd.Timestamp(row.period_start).to_pydatetime())
        end = mdates.date2num(pd.Timestamp(row.period_end).to_pydatetime())
        status = str(row.status)
        ax.broken_barh(
            [(start, end - start)],
            (evses.index(row.label) - 0.4, 0.8),
            color=STATUS_COLORS.get(status, "#cccccc"),
            label=None if status in seen else status,
        )
        seen.add(status)
    ax.set_yticks(range(len(evses)), evses, fontsize=8)
    ax.set_ylabel("EVSE id")
    ax.xaxis_date()
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_title(
        f"EVSE status timeline: {name} ({first['country_code']}/{first['party_id']}, "
        f"location {location_id})\n"
        f"{window.span}",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def timeline(frame: pd.DataFrame, location_id: str | None, path: Path, window: Window) -> Path:
    return _save(timeline_figure(frame, location_id, window), path)


def coverage_figure(frame: pd.DataFrame, window: Window) -> Figure:
    """Stacked area: EVSEs per status over time. An EVSE counts from its first known status; until then
    it is drawn as a hatched 'no status known yet' band, so the total stays the EVSEs known at the end."""
    fig = Figure(figsize=(11, 4.5))
    ax = fig.add_subplot()
    title = f"EVSEs by status over time, {window.scope or 'all EVSEs'}, {window.span}"
    if frame.empty:
        _empty(ax, "no status history in the window")
        ax.set_title(title)
        return fig
    grid = frame.pivot_table(
        index="sampled_at", columns="status", values="evses", aggfunc="sum", fill_value=0
    ).sort_index()
    order = [s for s in STATUS_COLORS if s in grid.columns] + [
        s for s in grid.columns if s not in STATUS_COLORS
    ]
    times = [pd.Timestamp(t).to_pydatetime() for t in grid.index]
    known = grid[order].sum(axis=1).to_numpy()
    unseen = known.max() - known
    ax.stackplot(
        times,
        *[grid[s].to_numpy() for s in order],
        labels=order,
        colors=[STATUS_COLORS.get(s, "#cccccc") for s in order],
    )
    if unseen.any():
        ax.fill_between(
            times,
            known,
            known + unseen,
            facecolor="none",
            edgecolor="#9a9a9a",
            hatch="///",
            linewidth=0,
            step=None,
        )
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Patch(facecolor="none", edgecolor="#9a9a9a", hatch="///"))
        labels.append(NOT_YET_KNOWN)
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        first_seen = int(unseen.max())
        ax.set_title(
            f"{title}\n{first_seen} EVSEs have no status before the pipeline first saw them (hatched)",
            fontsize=10,
        )
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title(title, fontsize=10)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel("EVSEs")
    return fig


def coverage(frame: pd.DataFrame, path: Path, window: Window) -> Path:
    return _save(coverage_figure(frame, window), path)


DECISION_COLORS = {"same": "#2ca02c", "review": "#ff7f0e", "not_same": "#7f7f7f"}


def identity_scores_figure(frame: pd.DataFrame, window: Window, same_at: float, review_from: float) -> Figure:
    """Histogram of the candidate pairs' scores, stacked by decision, with the two thresholds: the pairs
    near the `same` line are the ones worth an operator's look (or an override)."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    ax.set_title(f"Cross-source candidate pairs by score, {window.as_of}")
    if frame.empty:
        _empty(ax, "no candidate pairs: no two sources report locations near each other")
        return fig
    bins = [i / 40 for i in range(41)]
    order = [d for d in DECISION_COLORS if d in set(frame["decision"])]
    ax.hist(
        [frame.loc[frame["decision"] == d, "score"].to_numpy() for d in order],
        bins=bins,
        stacked=True,
        color=[DECISION_COLORS[d] for d in order],
        label=[f"{d} ({int((frame['decision'] == d).sum()):,})" for d in order],
    )
    for x, label in ((review_from, "review from"), (same_at, "same at")):
        ax.axvline(x, color="#333333", linestyle="--", linewidth=1)
        ax.text(x, ax.get_ylim()[1] * 0.95, f" {label} {x:g}", fontsize=8, va="top")
    ax.set_xlabel(
        "score (distance, address, name, EVSE count, connectors; an eMI3 EVSE id match decides alone)"
    )
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def identity_scores(
    frame: pd.DataFrame, path: Path, window: Window, same_at: float, review_from: float
) -> Path:
    return _save(identity_scores_figure(frame, window, same_at, review_from), path)
