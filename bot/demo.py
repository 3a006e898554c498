"""`duban demo`: a whole escalation in simulated time, on a temporary database, no DingTalk account.

The story (示范县, late 2026):
- 县长 assigns gas-pipe inspection to 县住建局 with no deadline ⇒ 7 working days (第三条).
  The head acknowledges and reports progress; the courtesy ping comes the day before; blue at D;
  yellow drafted on D+5 and signed by 常务副县长; a late extension is refused (第八条); red on
  D+15 signed by 县长; one red repeat; then 办结 and 销号 stop everything.
- 常务副县长 assigns a second task to 县应急局; its extension is approved by 县政府办主任 before
  the deadline and the clock restarts from the new deadline; it is finished on time.
- A score table closes the show.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session, select

from bot.console import ConsoleTransport, paint, show_replies, stamp
from bot.settings import Settings
from bot.simulation import Simulation
from bot.transport import OutgoingMessage
from message_templates.reply import Reply
from storage.models import Outbox
from storage.tz import shanghai

START = shanghai(2026, 11, 23, 9, 30)  # a Monday


class Demo(Simulation):
    def __init__(self, db_url: str, write: Callable[[str], None], colour: bool) -> None:
        self.write, self.colour = write, colour
        # with interactive cards, as a deployment has them by default: each card and its updates
        super().__init__(db_url, START, settings=Settings(database_url=db_url, dingtalk_cards=True),
                         transport=lambda engine, clock: ConsoleTransport(engine, clock, write, colour,
                                                                          full=self._show_full, cards=True))

    @staticmethod
    def _show_full(message: OutgoingMessage) -> bool:
        # the notices themselves are the point of the demo; other messages are shown by title only
        return any(mark in message.title for mark in ("督办单", "临期提醒", "延期申请"))

    def say(self, user_id: str, text: str, at: datetime | None = None, group: str = "",
            at_user_ids: tuple[str, ...] = ()) -> list[Reply]:
        if at is not None:
            self.run_until(at)
        self.write(paint(f"[{stamp(self.clock)}] 💬 {self.transport.name('user', user_id)}：{text}", self.colour))
        replies = super().say(user_id, text, group=group, at_user_ids=at_user_ids)
        show_replies(replies, self.clock, self.write, self.colour)
        return replies

    def scene(self, title: str) -> None:
        self.write("")
        self.write(paint(f"━━ {title} ━━", self.colour))

    def check_no_duplicates(self) -> int:
        """Every notice went to each recipient once: the demo's own proof of SPEC §7."""
        with Session(self.engine) as session:
            rows = session.exec(select(Outbox).where(Outbox.notice_id.is_not(None))).all()
        seen = Counter((row.notice_id, row.target, row.recipient, row.ding_remind_type) for row in rows)  # a DING is its own send
        sends = Counter(oid for _, m in self.transport.sent for oid in m.outbox_ids)
        if any(c > 1 for c in seen.values()) or any(c > 1 for c in sends.values()):
            raise AssertionError("a notice was sent twice")
        return len(seen)


def play(write: Callable[[str], None] = print, colour: bool = False, db_url: str | None = None,
         dispose: bool = True) -> Demo:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="duban-demo-") as tmp:
        demo = Demo(db_url or f"sqlite:///{tmp}/demo.db", write, colour)
        _script(demo)
        notices = demo.check_no_duplicates()
        if dispose:
            demo.engine.dispose()
    write("")
    write(f"✅ 演示结束：共发出 {len(demo.transport.sent)} 条消息（另有 {len(demo.transport.updates)} 次卡片原地更新），"
          f"其中督办提醒与督办单 {notices} 条，无一重复；"
          f"用时 {time.perf_counter() - started:.1f} 秒（模拟时间 {START:%m月%d日} 至 {demo.clock.now():%m月%d日}）。")
    write("📊 督查看板：运行 duban demo --serve，再打开它给出的链接（http://127.0.0.1:8787/board/）即可看到本次演示的全县情况。")
    return demo


def _script(d: Demo) -> None:
    head, office, director = "u_zhujian", "u_ducha1", "u_zhuren"
    d.scene("11月23日（周一）县长交办，未写期限：按7个工作日计（第三条）")
    d.say("u_xianzhang", "交办 县住建局 完成全县燃气管道隐患排查并报送整改清单", group="cid_leaders")
    d.say(head, "签收 DB-2026-0001", at=shanghai(2026, 11, 23, 10, 15))
    d.say(head, "进展 DB-2026-0001 已完成城区排查，乡镇部分进行中 60%", at=shanghai(2026, 11, 26, 16, 0))

    d.scene("第二项：常务副县长交办县应急局，限12月4日")
    d.say("u_changwu", "交办 县应急局 类别 会议交办 开展冬季森林防火隐患排查 截止12月4日", group="cid_leaders")
    d.say("u_yingji", "签收 DB-2026-0002", at=shanghai(2026, 11, 27, 9, 40))

    d.scene("到期前1个工作日：临期提醒")
    d.run_until(shanghai(2026, 12, 1, 9, 30))

    d.scene("第二项在期限内申请延期，县政府办主任同意（第八条），按新期限重新计时")
    d.say("u_yingji", "延期 DB-2026-0002 12月18日 需等待省林业局统一下发排查系统账号", at=shanghai(2026, 12, 1, 10, 0))
    d.say(director, "同意延期 DB-2026-0002", at=shanghai(2026, 12, 1, 11, 0))

    d.scene("到期当天未办结：蓝色督办单（第四条）")
    d.run_until(shanghai(2026, 12, 3, 9, 0))

    d.scene("到期第5天：黄色督办单拟制，报常务副县长签发（第五、七条）")
    code = d.wait_for_draft("DB-2026-0001", shanghai(2026, 12, 8, 18, 0))
    d.say("u_changwu", f"签发 {code}", at=d.clock.now() + timedelta(minutes=10))
    d.say(head, "延期 DB-2026-0001 12月31日 乡镇管网图纸未移交，需补测", at=shanghai(2026, 12, 8, 9, 30))

    d.scene("第二项：新期限前1个工作日临期提醒，按期办结、销号")
    d.say("u_yingji", "办结 DB-2026-0002 全县32处林区隐患已排查完毕，整改台账已报县应急局",
          at=shanghai(2026, 12, 17, 15, 0))
    d.say(office, "销号 DB-2026-0002")

    d.scene("黄色督办单发出后10天：红色督办单，报县长签发（第六条）")
    code = d.wait_for_draft("DB-2026-0001", shanghai(2026, 12, 18, 18, 0))
    d.say("u_xianzhang", f"签发 {code}", at=d.clock.now() + timedelta(minutes=10))

    d.scene("仍未办结：每5天再发红色督办单，直至办结销号")
    code = d.wait_for_draft("DB-2026-0001", shanghai(2026, 12, 23, 18, 0))
    d.say("u_xianzhang", f"签发 {code}", at=d.clock.now() + timedelta(minutes=5))

    d.scene("第一项办结、销号：督办停止")
    d.say(head, "办结 DB-2026-0001 全县燃气管道排查完毕，整改清单已报县政府办", at=shanghai(2026, 12, 24, 10, 0))
    d.say(office, "销号 DB-2026-0001")
    d.run_until(shanghai(2026, 12, 31, 17, 0))
    d.write(paint(f"[{stamp(d.clock)}] （此后一周没有任何督办消息：已销号的事项不再督办）", d.colour))

    d.scene("积分（第九条）")
    d.say(office, "积分")
