"""Charts as inline SVG, drawn here: no charting library, nothing fetched (intranets are often offline).

Only numbers and escaped names go into the markup; colours are presentation attributes (a CSP with
no 'unsafe-inline' blocks style attributes, not these).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from bot.dashboard.data import UnitRow, WeekBar
from storage.models import COLOURS

FILL = {"blue": "#1677ff", "yellow": "#faad14", "red": "#cf1322"}
NAMES = {"blue": "蓝", "yellow": "黄", "red": "红"}


def score_bars(rows: Sequence[UnitRow], points: dict[str, int]) -> Markup:
    """Each unit's score as a bar going left from zero, stacked by colour (the monthly chart's layout)."""
    if not rows:
        return Markup("")
    label_w, bar_w, row_h = 104, 220, 22
    lowest = min((r.score for r in rows), default=0)
    scale = bar_w / max(-lowest, 1)
    height = row_h * len(rows) + 8
    parts = [f'<svg class="chart" viewBox="0 0 {label_w + bar_w + 56} {height}" role="img" '
             f'aria-label="各单位本年督办积分">']
    for i, row in enumerate(rows):
        y = 4 + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
                     f'{escape(row.unit.name)}</text>')
        x = label_w + bar_w
        for colour in COLOURS:
            width = -row.year[colour] * points[colour] * scale
            if width > 0:
                x -= width
                parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{row_h - 8}" '
                             f'fill="{FILL[colour]}"><title>{NAMES[colour]}色督办单 {row.year[colour]} 份</title></rect>')
        parts.append(f'<text x="{label_w + bar_w + 4}" y="{y + 15}" font-size="12">{row.score}分</text>')
    parts.append(f'<line x1="{label_w + bar_w}" y1="0" x2="{label_w + bar_w}" y2="{height}" stroke="#595959"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def week_bars(weeks: Sequence[WeekBar]) -> Markup:
    """Colour notices issued per week, stacked, oldest week on the left."""
    if not weeks:
        return Markup("")
    col_w, chart_h, top, bottom = 26, 120, 14, 30
    peak = max((sum(w.counts.values()) for w in weeks), default=0) or 1
    width = col_w * len(weeks) + 10
    parts = [f'<svg class="chart" viewBox="0 0 {width} {chart_h + top + bottom}" role="img" '
             f'aria-label="每周发出的督办单">']
    for i, week in enumerate(weeks):
        x, y = 5 + i * col_w, top + chart_h
        total = sum(week.counts.values())
        for colour in COLOURS:
            h = week.counts[colour] / peak * chart_h
            if h > 0:
                y -= h
                parts.append(f'<rect x="{x + 3}" y="{y:.1f}" width="{col_w - 6}" height="{h:.1f}" '
                             f'fill="{FILL[colour]}"><title>{week.start.month}月{week.start.day}日起一周 '
                             f'{NAMES[colour]}色 {week.counts[colour]} 份</title></rect>')
        if total:
            parts.append(f'<text x="{x + col_w / 2}" y="{y - 3:.1f}" text-anchor="middle" font-size="10">{total}</text>')
        parts.append(f'<text x="{x + col_w / 2}" y="{top + chart_h + 14}" text-anchor="middle" font-size="9">'
                     f'{week.start.month}/{week.start.day}</text>')
    parts.append(f'<line x1="0" y1="{top + chart_h}" x2="{width}" y2="{top + chart_h}" stroke="#bfbfbf"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
