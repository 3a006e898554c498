"""A digest's attachment (bot.outbox `_digest`) as the .xlsx DingTalk's sampleFile carries: one row per
message it stands for, its title and its whole text, markup taken out so the text reads as written."""

from __future__ import annotations

import re
from pathlib import Path

from bot.transport import Attachment

COLUMNS = (("序号", 7), ("标题", 36), ("全文", 100))
# DingTalk markdown the spreadsheet would show as noise: font tags, bold marks, heading and quote marks
_MARKUP = re.compile(r"</?font[^>]*>|\*\*|^#{1,6} |^> ", re.MULTILINE)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # a link keeps its words: 「签收」, not its dtmd:// address


def plain(markdown: str) -> str:
    return _LINK.sub(r"\1", _MARKUP.sub("", markdown)).strip()


def write_xlsx(attachment: Attachment, directory: Path) -> Path:
    from openpyxl import Workbook  # imported when a digest goes out, not at start-up
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = "全文"
    sheet.append([name for name, _ in COLUMNS])
    for cell, (_, width) in zip(sheet[1], COLUMNS, strict=True):
        cell.font = Font(bold=True)
        sheet.column_dimensions[cell.column_letter].width = width
    wrap = Alignment(wrap_text=True, vertical="top")
    for number, (title, text) in enumerate(attachment.items, start=1):
        sheet.append([number, title, plain(text)])
        for cell in sheet[sheet.max_row]:
            cell.alignment = wrap
    sheet.freeze_panes = "A2"
    path = directory / attachment.file_name
    book.save(path)
    return path
