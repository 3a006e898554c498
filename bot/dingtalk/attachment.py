"""A digest's attachment (bot.outbox `_digest`) as the .xlsx DingTalk's sampleFile carries: one row per
message it stands for, its title and its whole text exactly as it would have gone on its own — a
notice's wording is the document, so nothing in it is rewritten, markup included."""

from __future__ import annotations

from pathlib import Path

from bot.transport import Attachment

COLUMNS = (("序号", 7), ("标题", 36), ("全文", 100))


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
        sheet.append([number, title, text])
        for cell in sheet[sheet.max_row]:
            cell.alignment = wrap
    sheet.freeze_panes = "A2"
    path = directory / attachment.file_name
    book.save(path)
    return path
