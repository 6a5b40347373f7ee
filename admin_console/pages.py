"""The console's pages as HTML strings (pure): one layout, tables, forms with their CSRF token, and line plots
drawn as inline SVG. No external asset: a page is one response. Every value is escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

NAV = (("/", "Overview"), ("/plots", "Plots"), ("/quarantine", "Quarantine"), ("/dead-letters", "Dead letters"))
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
STYLE = """
body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#20323f;color:#fff;padding:.6em 1em;display:flex;gap:1.2em;align-items:center}
header a{color:#cfe3f2;text-decoration:none}header a.here{color:#fff;font-weight:600}
header .who{margin-left:auto}header form{display:inline}
main{padding:1em 1.5em;max-width:1200px}
table{border-collapse:collapse;margin:.3em 0 1.2em;background:#fff}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;font-variant-numeric:tabular-nums}
th{background:#eef2f5}.src{color:#777;font-size:12px}.problem{color:#b00}
.note{padding:.6em 1em;border-radius:4px;margin:.6em 0}.ok{background:#e6f4ea}.bad{background:#fdecea}
button{cursor:pointer}.plots{display:flex;flex-wrap:wrap;gap:1em}.plot{background:#fff;border:1px solid #ddd;padding:.5em}
code{font-size:12px}td:has(form){white-space:nowrap}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def layout(title: str, body: str, *, user: str | None = None, csrf: str | None = None, here: str = "") -> str:
    links = "".join(f'<a href="{href}"{" class=here" if href == here else ""}>{esc(name)}</a>' for href, name in NAV)
    who = ""
    if user:
        who = (f'<span class="who">{esc(user)} <form method="post" action="/logout">'
               f'<input type="hidden" name="csrf" value="{esc(csrf or "")}"><button>Log out</button></form></span>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · radlake console'
            f'</title><style>{STYLE}</style></head><body><header><strong>radlake console</strong>{links if user else ""}'
            f'{who}</header><main><h1>{esc(title)}</h1>{body}</main></body></html>')


def table(header: Sequence[str], rows: Iterable[Sequence[object]], *, raw: frozenset[int] = frozenset()) -> str:
    """A table; the cells of the columns in ``raw`` are HTML already (forms), the others are escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw else esc(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or _empty(len(header))}</tbody></table>"


def _empty(columns: int) -> str:
    return f'<tr><td colspan="{columns}"><em>(none)</em></td></tr>'


def post_button(action: str, label: str, csrf: str, fields: dict[str, object] | None = None) -> str:
    """A one-button form posting ``fields`` and the session's CSRF token (no script: the pages run none)."""
    hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in (fields or {}).items())
    return (f'<form method="post" action="{esc(action)}" style="display:inline">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}">{hidden}<button>{esc(label)}</button></form>')


def note(text: str, ok: bool) -> str:
    return f'<div class="note {"ok" if ok else "bad"}" role="status">{esc(text)}</div>'


def section(title: str, source: str, content: str) -> str:
    return f'<h2>{esc(title)} <span class="src">from {esc(source)}</span></h2>{content}'


# --- plots ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float]]  # (unix time, value)


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / count for i in range(count + 1)]


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.1f}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:.1f}k"
    if magnitude >= 10 or value == 0:
        return f"{value:.0f}"
    return f"{value:.2g}"


def line_plot(title: str, unit: str, series: Sequence[Series], start: float, end: float,
              width: int = 520, height: int = 220) -> str:
    """A line per series over [start, end] as inline SVG, with a legend; "no data" when there is none."""
    left, right, top, bottom = 52, 10, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for _, v in s.points]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(title)}"><text x="{left}" y="16" font-weight="600" font-size="13">{esc(title)}'
             f'<tspan font-weight="400" fill="#777"> ({esc(unit)})</tspan></text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>']
    if not values:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#999">'
                     'no data</text></svg>')
        return f'<div class="plot">{"".join(parts)}</div>'
    low, high = min(0.0, min(values)), max(values)
    high = high if high > low else low + 1.0

    def x(t: float) -> float:
        return left + (t - start) / (end - start) * plot_w if end > start else left

    def y(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    for tick in _ticks(low, high):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10">'
                     f'{_number(tick)}</text>')
    ticks = _ticks(start, end)
    for i, tick in enumerate(ticks):
        label = datetime.fromtimestamp(tick, UTC).strftime("%H:%M")
        anchor = "end" if i == len(ticks) - 1 else "middle"  # the last label stays inside the picture
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 12}" text-anchor="{anchor}" font-size="10">{label}'
                     "</text>")
    legend = []
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        legend.append(f'<span style="color:{colour}">&#9632;</span> {esc(s.label)}')
    parts.append("</svg>")
    return f'<div class="plot">{"".join(parts)}<div class="src">{" &nbsp; ".join(legend)}</div></div>'
