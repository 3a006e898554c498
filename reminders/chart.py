"""The monthly bulletin's picture: each unit's score as a bar, stacked by notice colour.

Chinese labels need a CJK font on every machine, including a fresh one with no system fonts, so
the font ships as a declared dependency: the `pylopdf-fonts-zh-cn` wheel (Noto Sans SC, SIL OFL
1.1, no dependencies of its own). It is registered with matplotlib from the package's own path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib
import pylopdf_fonts_zh_cn
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# (colour, legend label, bar colour): the same colours the notices use
STACK = (("blue", "蓝色督办单", "#1677FF"), ("yellow", "黄色督办单", "#FAAD14"), ("red", "红色督办单", "#CF1322"))


@cache
def cjk_family() -> str:
    """Register the bundled Noto Sans SC once; returns its family name for rcParams."""
    path = str(pylopdf_fonts_zh_cn.sans_path())
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


@dataclass(frozen=True)
class Bar:
    label: str  # the unit's name
    points: Mapping[str, int]  # colour → points lost to it (≤ 0)

    @property
    def total(self) -> int:
        return sum(self.points.values())


def score_chart(bars: Sequence[Bar], title: str, out_path: Path) -> Path:
    """A horizontal bar per unit, first bar on top, deductions stacked leftwards from zero."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # a private rc context and a bare Figure (no pyplot): safe to call from any thread, no global state
    with matplotlib.rc_context({"font.family": [cjk_family()], "font.size": 11}):
        fig = Figure(figsize=(8, 1.6 + 0.42 * max(len(bars), 1)), dpi=150, layout="constrained")
        ax = fig.subplots()
        rows = list(range(len(bars)))[::-1]
        left = [0] * len(bars)
        for colour, label, fill in STACK:
            widths = [b.points.get(colour, 0) for b in bars]
            ax.barh(rows, widths, left=left, color=fill, label=label, height=0.62)
            left = [a + w for a, w in zip(left, widths, strict=True)]
        lowest = min((b.total for b in bars), default=0)
        span = max(-lowest, 1)
        for row, bar in zip(rows, bars, strict=True):
            ax.text(bar.total - span * 0.015, row, f"{bar.total}分", va="center", ha="right", fontsize=10)
        ax.set_yticks(rows, [b.label for b in bars])
        ax.set_xlim(lowest - span * 0.18 - 0.5, span * 0.04)
        ax.axvline(0, color="#595959", linewidth=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # scores are whole points
        ax.set_xlabel("督办扣分")
        fig.suptitle(title, fontsize=14)
        fig.legend(loc="outside lower center", frameon=False, ncols=3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", color="#e8e8e8", linewidth=0.6)
        ax.set_axisbelow(True)
        fig.savefig(out_path, format="png", facecolor="white")
    return out_path
