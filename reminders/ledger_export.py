"""The Excel 台账 (SPEC §5): one row per task, and each unit's score, for the 督查室's own files.

Built over reminders.ledger's ledger_rows and unit_scores, so the file says what the chat 台账 and
积分 commands say.
"""

from __future__ import annotations

import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from message_templates.render import STATUS_NAMES
from reminders.ledger import ledger_rows, unit_scores
from reminders.reports import competition_ranks

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

from storage.models import (
    COLOURS,
    OPEN_STATUSES,
    Notice,
    NoticeKind,
    NoticeStatus,
    Outbox,
    OutboxStatus,
    ProgressReport,
    ScoreEvent,
    Task,
)
from storage.tz import to_shanghai

COLOUR_WORDS = {NoticeKind.BLUE: "蓝色", NoticeKind.YELLOW: "黄色", NoticeKind.RED: "红色"}
COLOUR_FILLS = {NoticeKind.BLUE: "FFBDD7EE", NoticeKind.YELLOW: "FFFFE699", NoticeKind.RED: "FFFF9C9C"}
TASK_COLUMNS = (("编号", 15), ("事项", 42), ("责任单位", 16), ("状态", 9), ("督办颜色", 10), ("期限", 17),
                ("逾期天数", 10), ("最新进展", 42), ("已发督办单", 16), ("扣分", 8), ("最近督办单阅读", 30))
UNIT_COLUMNS = (("排名", 7), ("单位", 18), ("蓝色督办单", 12), ("黄色督办单", 12), ("红色督办单", 12), ("扣分合计", 10))
HEADER_FILL = "FFD9D9D9"
UNREAD_COLOUR = "FFFF0000"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
# An export's file waits in reports_dir/ledger for the outbox; once no unsent row needs it, and it is
# older than this (so an export still inside its uncommitted transaction is never touched), it goes.
LINGER = timedelta(minutes=10)


def export_ledger(engine: Engine, now: datetime, out_path: Path) -> Path:
    """Write the 台账 as of `now` to `out_path` (.xlsx); for `duban export ledger --out FILE.xlsx`."""
    with Session(engine) as session:
        return write_ledger(session, to_shanghai(now), Path(out_path))


def ledger_file(reports_dir: Path, now: datetime) -> Path:
    """Where a chat export waits for delivery: a folder of its own, named by its time, so the file
    keeps a plain name (the one people see in DingTalk) and exports at the same minute never clash."""
    folder = Path(reports_dir).resolve() / "ledger" / f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"
    return folder / f"督办台账-{now:%Y%m%d-%H%M}.xlsx"


def forget_sent_ledgers(session: Session, ledger_dir: Path, now: datetime) -> None:
    """Remove earlier exports that no unsent outbox row still refers to (each export tidies up after
    the ones before it: the outbox hands over no "sent" event, and need not know about these files)."""
    if not ledger_dir.is_dir():
        return
    waiting = {Path(p) for p in session.exec(select(Outbox.file_path).where(
        Outbox.file_path.is_not(None), Outbox.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING))))}
    settled = f"{now - LINGER:%Y%m%d-%H%M%S}"
    for folder in ledger_dir.iterdir():
        if folder.is_dir() and folder.name < settled and not any(f in waiting for f in folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)


def write_ledger(session: Session, now: datetime, out_path: Path) -> Path:
    tasks = list(session.exec(select(Task).order_by(Task.id)))
    urged: dict[int, dict[NoticeKind, int]] = defaultdict(lambda: dict.fromkeys(COLOURS, 0))
    for task_id, kind, count in session.exec(select(Notice.task_id, Notice.kind, func.count()).where(
            Notice.status == NoticeStatus.ISSUED, Notice.kind.in_(COLOURS)).group_by(Notice.task_id, Notice.kind)):
        urged[task_id][kind] = count
    points = dict(session.exec(select(ScoreEvent.task_id, func.sum(ScoreEvent.points))
                               .group_by(ScoreEvent.task_id)).all())

    from openpyxl import Workbook  # here, not at import: openpyxl is a tenth of a second at start-up
    from openpyxl.styles import Font, PatternFill

    book = Workbook()
    sheet = book.active
    sheet.title = "督办台账"
    _header(sheet, TASK_COLUMNS)
    for row in ledger_rows(session, now, tasks):
        task = row["task"]
        counts = urged[task.id]
        values = (
            task.code, task.title, row["unit"].name, STATUS_NAMES[task.status], COLOUR_WORDS.get(row["colour"], "未督办"),
            _local(task.deadline), row["overdue"] if task.status in OPEN_STATUSES else _late_by(task),
            _last_progress(row["last"]),
            " ".join(f"{COLOUR_WORDS[k][0]}{n}" for k, n in counts.items() if n), points.get(task.id, 0),
            "；".join(f"{p['name']} {p['text']}" for p in (row["reads"][0]["people"] if row["reads"] else [])),
        )
        sheet.append(_legal(values))
        cells = sheet[sheet.max_row]
        for index in (1, 7):  # typed by users: text, never a formula, whatever it starts with
            cells[index].data_type = "s"
        cells[5].number_format = DATETIME_FORMAT
        if row["reads"] and any(p["late"] for p in row["reads"][0]["people"]):
            cells[10].font = Font(color=UNREAD_COLOUR)  # unread after a working day: red, as the 督查室 asked
        if row["colour"] in COLOUR_FILLS:
            cells[4].fill = PatternFill("solid", fgColor=COLOUR_FILLS[row["colour"]])

    units = book.create_sheet(f"{now.year}年单位积分")
    _header(units, UNIT_COLUMNS)
    scores = unit_scores(session, now.year)
    for rank, row in zip(competition_ranks([r["score"] for r in scores]), scores, strict=True):
        units.append(_legal((rank, row["unit"].name, row["blue"], row["yellow"], row["red"], row["score"])))

    for each in (sheet, units):
        each.auto_filter.ref = each.dimensions
    out_path.parent.mkdir(parents=True, exist_ok=True)
    book.save(out_path)
    return out_path


def _legal(values: Iterable[object]) -> list[object]:
    """Text without the control characters openpyxl refuses (chat input is cleaned where it enters;
    this keeps a row stored before that, or text from elsewhere, from failing the whole export)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return [ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in values]


def _header(sheet: Worksheet, columns: tuple[tuple[str, int], ...]) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill

    sheet.append([name for name, _ in columns])
    for cell, (_, width) in zip(sheet[1], columns, strict=True):
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor=HEADER_FILL)
        cell.alignment = Alignment(horizontal="center")
        sheet.column_dimensions[cell.column_letter].width = width
    sheet.freeze_panes = "A2"


def _local(moment: datetime | None) -> datetime | None:
    """Excel has no time zones: Shanghai wall-clock time."""
    return None if moment is None else to_shanghai(moment).replace(tzinfo=None)


def _late_by(task: Task) -> int:
    """A finished task's overdue days are frozen at its 销号 / 撤销."""
    if task.closed_at is None or task.closed_at <= task.deadline:
        return 0
    return (task.closed_at.date() - task.deadline.date()).days


def _last_progress(report: ProgressReport | None) -> str:
    return "" if report is None else f"{report.at:%m-%d} {report.text}"
