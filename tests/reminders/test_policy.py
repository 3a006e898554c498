"""The 三色 rules (第三–第九条, SPEC §3) as a table of exact send times, on the pure policy.

`play` runs the policy the way the engine does — act on the first due item, evaluate again — in
memory, with signatures arriving `sign_after` a draft is sent, and optional closing and
extension events. Each case asserts the full list of (kind+seq, moment) it produced.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from reminders.calendar import WorkCalendar
from reminders.policy import NoticeState, Policy, TaskState
from reminders.rules import DayCounting, Rules
from storage.models import NoticeKind, NoticeStatus, TaskStatus
from storage.tz import shanghai as sh

CAL = WorkCalendar()
LETTER = {"ack_reminder": "A", "courtesy": "C", "report_reminder": "P", "blue": "B", "yellow": "Y", "red": "R",
          "sign_reminder": "S"}


def task(assigned: datetime, deadline: datetime, acknowledged: bool = True, **kw) -> TaskState:
    return TaskState(status=TaskStatus.IN_PROGRESS if acknowledged else TaskStatus.ASSIGNED, assigned_at=assigned,
                     deadline=deadline, cycle=0, cycle_started_at=assigned, acknowledged=acknowledged, **kw)


def play(state: TaskState, until: datetime, *, rules: Rules | None = None, sign_after: timedelta | None = None,
         close_at: datetime | None = None, extend_at: datetime | None = None,
         extend_to: datetime | None = None, hold: bool = False) -> tuple[list[tuple[str, datetime]], list]:
    """Returns [(event, moment)] — e.g. ("B1", t), ("Y1 draft", t), ("Y1", t) — and the final notices."""
    policy = Policy(CAL, rules or Rules())
    notices: list[NoticeState] = []
    log: list[tuple[str, datetime]] = []
    sign_at: dict[int, datetime] = {}
    now = state.assigned_at
    while True:
        for notice_id, at in list(sign_at.items()):
            if at <= now:
                notices = [replace(n, status=NoticeStatus.ISSUED, issued_at=now) if n.id == notice_id else n
                           for n in notices]
                log.append((_name(notices, notice_id), now))
                del sign_at[notice_id]
        plan = policy.evaluate(state, notices, now)
        for void_id in plan.void:
            notices = [replace(n, status=NoticeStatus.VOID) if n.id == void_id else n for n in notices]
            log.append((f"{_name(notices, void_id)} void", now))
        if plan.due and not any(at <= now for at in sign_at.values()):
            due = plan.due[0]
            notice = NoticeState(len(notices) + 1, due.kind, due.seq, due.cycle,
                                 NoticeStatus.DRAFT if due.draft else NoticeStatus.ISSUED, due.due_at, now,
                                 None if due.draft else now, due.ref_notice_id)
            notices.append(notice)
            log.append((f"{LETTER[due.kind]}{due.seq}" + (" draft" if due.draft else ""), now))
            if due.draft and sign_after is not None:
                sign_at[notice.id] = now + sign_after
            if due.draft and hold:
                notices[-1] = replace(notice, status=NoticeStatus.HELD)
            continue
        events = [t for t in (plan.next_check_at, close_at, extend_at, *sign_at.values()) if t and t > now]
        if not events or min(events) > until:
            return log, notices
        now = min(events)
        if close_at == now:
            state = replace(state, status=TaskStatus.CLOSED)
            log.append(("closed", now))
        if extend_at == now:
            state = replace(state, deadline=extend_to, cycle=state.cycle + 1, cycle_started_at=now)
            log.append(("extended", now))


def _name(notices: list[NoticeState], notice_id: int) -> str:
    n = next(n for n in notices if n.id == notice_id)
    return f"{LETTER[n.kind]}{n.seq}"


# A Monday assignment with the default 7 working days: 11-23 10:00 → D = 12-02 (Wed) 17:30.
BASE = task(sh(2026, 11, 23, 10), sh(2026, 12, 2, 17, 30))


def test_whole_escalation_with_immediate_signatures():
    log, _ = play(BASE, sh(2027, 1, 1), sign_after=timedelta(0))
    assert log == [
        ("C1", sh(2026, 12, 1, 9)),  # 1 working day before D, at 09:00
        ("B1", sh(2026, 12, 2, 17, 30)),  # 第四条: on the day, at D
        ("Y1 draft", sh(2026, 12, 7, 17, 30)), ("Y1", sh(2026, 12, 7, 17, 30)),  # 第五条: day 5
        ("R1 draft", sh(2026, 12, 17, 17, 30)), ("R1", sh(2026, 12, 17, 17, 30)),  # 第六条: yellow + 10 days
        ("R2 draft", sh(2026, 12, 22, 17, 30)), ("R2", sh(2026, 12, 22, 17, 30)),  # every 5 days
        ("R3 draft", sh(2026, 12, 28, 9)), ("R3", sh(2026, 12, 28, 9)),  # 12-27 is a Sunday ⇒ Monday 09:00
    ]


def test_red_counts_from_the_yellows_issue_not_its_draft():
    log, _ = play(BASE, sh(2026, 12, 20), sign_after=timedelta(days=1, hours=1))
    assert ("Y1", sh(2026, 12, 8, 18, 30)) in log
    # issued 12-08 18:30 ⇒ red due 12-18 18:30, after hours ⇒ 12-21 (Mon) 09:00: beyond `until`
    assert not any(e.startswith("R") for e, _ in log)
    log, _ = play(BASE, sh(2026, 12, 22), sign_after=timedelta(days=1, hours=1))
    assert ("R1 draft", sh(2026, 12, 21, 9)) in log


def test_acknowledgement_reminder_one_working_day_later():
    log, _ = play(task(sh(2026, 11, 27, 16), sh(2026, 12, 11, 17, 30), acknowledged=False), sh(2026, 12, 1))
    assert log == [("A1", sh(2026, 11, 30, 16))]  # Friday 16:00 ⇒ Monday 16:00


def test_acknowledgement_reminder_after_a_holiday_assignment():
    # assigned on a National Day holiday: the first working day after is 10-08
    log, _ = play(task(sh(2026, 10, 3, 10), sh(2026, 10, 20, 17, 30), acknowledged=False), sh(2026, 10, 10))
    assert log == [("A1", sh(2026, 10, 8, 10))]


def test_deadline_before_the_national_day_holiday():
    log, _ = play(task(sh(2026, 9, 21, 10), sh(2026, 9, 30, 17, 30)), sh(2026, 10, 20), sign_after=timedelta(0))
    assert log == [
        ("C1", sh(2026, 9, 29, 9)),
        ("B1", sh(2026, 9, 30, 17, 30)),
        ("Y1 draft", sh(2026, 10, 8, 9)), ("Y1", sh(2026, 10, 8, 9)),  # 10-05 falls in the holiday
        ("R1 draft", sh(2026, 10, 19, 9)), ("R1", sh(2026, 10, 19, 9)),  # 10-18 is a Sunday
    ]


def test_deadline_on_a_make_up_working_saturday():
    assert CAL.is_workday(sh(2026, 10, 10).date())  # 调休: Saturday 10-10 is a working day
    log, _ = play(task(sh(2026, 9, 28, 10), sh(2026, 10, 10, 17, 30)), sh(2026, 10, 16), sign_after=timedelta(0))
    assert log == [
        ("C1", sh(2026, 10, 9, 9)),  # the working day before is Friday 10-09
        ("B1", sh(2026, 10, 10, 17, 30)),  # delivered on the Saturday: it is a working day
        ("Y1 draft", sh(2026, 10, 15, 17, 30)), ("Y1", sh(2026, 10, 15, 17, 30)),
    ]


def test_courtesy_ping_skips_back_over_a_make_up_sunday_correctly():
    # D on Monday 9-21; the working day before is Sunday 9-20 (调休)
    log, _ = play(task(sh(2026, 9, 14, 10), sh(2026, 9, 21, 17, 30)), sh(2026, 9, 21, 18))
    assert log[0] == ("C1", sh(2026, 9, 20, 9))


def test_night_and_weekend_deadlines_are_delivered_at_nine_on_the_next_working_day():
    log, _ = play(task(sh(2026, 11, 23, 10), sh(2026, 12, 4, 22)), sh(2026, 12, 8), sign_after=timedelta(0))
    assert ("B1", sh(2026, 12, 7, 9)) in log  # Friday 22:00 ⇒ Monday 09:00


@pytest.mark.parametrize(("colour_reached", "approve_at"), [
    ("none", sh(2026, 12, 1, 11)),
    ("blue", sh(2026, 12, 3, 10)),
    ("yellow", sh(2026, 12, 8, 10)),
    ("red", sh(2026, 12, 18, 10)),
])
def test_an_approved_extension_restarts_the_clock_at_each_colour(colour_reached, approve_at):
    new_deadline = sh(2027, 1, 15, 17, 30)  # a Friday (2027: Monday–Friday estimate)
    log, notices = play(BASE, sh(2027, 1, 28), sign_after=timedelta(0), extend_at=approve_at,
                        extend_to=new_deadline)
    before = [e for e, t in log if t < approve_at]
    after = [(e, t) for e, t in log if t > approve_at]
    expected_before = {"none": ["C1"], "blue": ["C1", "B1"], "yellow": ["C1", "B1", "Y1 draft", "Y1"],
                       "red": ["C1", "B1", "Y1 draft", "Y1", "R1 draft", "R1"]}[colour_reached]
    assert before == expected_before
    # notices already issued stay issued (第八条); the new cycle starts again from blue
    issued_before = [n for n in notices if n.cycle == 0 and n.status is NoticeStatus.ISSUED]
    assert len(issued_before) == len([e for e in expected_before if " " not in e])
    seq = {"none": 1, "blue": 2, "yellow": 2, "red": 2}[colour_reached]
    assert after[:3] == [
        (f"C{2 if colour_reached != 'none' else 2}", sh(2027, 1, 14, 9)),
        (f"B{seq}", sh(2027, 1, 15, 17, 30)),
        (f"Y{1 if colour_reached in ('none', 'blue') else 2} draft", sh(2027, 1, 20, 17, 30)),
    ]


def test_completion_one_minute_before_the_yellow_stops_everything():
    yellow_at = sh(2026, 12, 7, 17, 30)
    log, _ = play(BASE, sh(2027, 2, 1), sign_after=timedelta(0), close_at=yellow_at - timedelta(minutes=1))
    assert log == [("C1", sh(2026, 12, 1, 9)), ("B1", sh(2026, 12, 2, 17, 30)),
                   ("closed", yellow_at - timedelta(minutes=1))]


def test_a_task_closed_while_a_draft_waits_voids_the_draft():
    log, notices = play(BASE, sh(2027, 2, 1), sign_after=None, close_at=sh(2026, 12, 8, 11))
    assert ("Y1 draft", sh(2026, 12, 7, 17, 30)) in log
    assert ("closed", sh(2026, 12, 8, 11)) in log and ("Y1 void", sh(2026, 12, 8, 11)) in log
    assert not any(e.startswith(("R", "Y1 ")) and e != "Y1 draft" and e != "Y1 void" for e, _ in log)
    assert [n.status for n in notices if n.kind is NoticeKind.YELLOW] == [NoticeStatus.VOID]


def test_a_waiting_draft_reminds_its_signer_each_working_day():
    log, _ = play(BASE, sh(2026, 12, 11, 18), sign_after=None)
    assert [x for x in log if x[0].startswith("S")] == [
        ("S1", sh(2026, 12, 8, 17, 30)), ("S2", sh(2026, 12, 9, 17, 30)),
        ("S3", sh(2026, 12, 10, 17, 30)), ("S4", sh(2026, 12, 11, 17, 30))]
    assert not any(e.startswith("R") for e, _ in log)  # no red while the yellow is unsigned


def test_a_held_draft_stops_escalation_and_reminders():
    log, _ = play(BASE, sh(2027, 1, 31), hold=True)
    assert log[-1] == ("Y1 draft", sh(2026, 12, 7, 17, 30))


def test_working_day_counting_is_a_setting():
    rules = Rules(day_counting=DayCounting.WORKING)
    log, _ = play(BASE, sh(2026, 12, 31), rules=rules, sign_after=timedelta(0))
    assert ("Y1", sh(2026, 12, 9, 17, 30)) in log  # 5 working days after Wednesday 12-02
    assert ("R1", sh(2026, 12, 23, 17, 30)) in log  # 10 working days after 12-09


def test_auto_issue_needs_no_signature():
    log, _ = play(BASE, sh(2026, 12, 18), rules=Rules(auto_issue=True))
    assert ("Y1", sh(2026, 12, 7, 17, 30)) in log and ("R1", sh(2026, 12, 17, 17, 30)) in log


def test_a_2027_deadline_uses_the_monday_to_friday_estimate():
    assert CAL.is_estimate(sh(2027, 2, 10).date()) and not CAL.is_estimate(sh(2026, 2, 10).date())
    log, _ = play(task(sh(2027, 1, 25, 10), sh(2027, 2, 5, 17, 30)), sh(2027, 2, 12), sign_after=timedelta(0))
    # Spring Festival 2027 is not published yet: Monday–Friday are assumed working days
    assert log == [("C1", sh(2027, 2, 4, 9)), ("B1", sh(2027, 2, 5, 17, 30)),
                   ("Y1 draft", sh(2027, 2, 10, 17, 30)), ("Y1", sh(2027, 2, 10, 17, 30))]


def test_no_courtesy_ping_for_a_task_given_less_than_a_working_day():
    log, _ = play(task(sh(2026, 11, 23, 10), sh(2026, 11, 23, 16)), sh(2026, 11, 24))
    assert log == [("B1", sh(2026, 11, 23, 16))]


def test_periodic_progress_duty_pings_once_per_missed_period():
    state = task(sh(2026, 11, 2, 10), sh(2026, 12, 31, 17, 30), report_every_days=7,
                 last_progress_at=sh(2026, 11, 5, 10))
    log, _ = play(state, sh(2026, 11, 27))
    assert [x for x in log if x[0].startswith("P")] == [("P1", sh(2026, 11, 12, 10)), ("P2", sh(2026, 11, 19, 10)),
                                                        ("P3", sh(2026, 11, 26, 10))]


def test_nothing_is_due_twice_when_evaluated_again_at_the_same_instant():
    policy = Policy(CAL, Rules())
    plan = policy.evaluate(BASE, [], sh(2026, 12, 2, 17, 30))
    issued = [NoticeState(i + 1, d.kind, d.seq, d.cycle, NoticeStatus.ISSUED, d.due_at, d.send_at, d.send_at)
              for i, d in enumerate(plan.due)]
    assert [d.kind for d in plan.due] == [NoticeKind.COURTESY, NoticeKind.BLUE]
    assert policy.evaluate(BASE, issued, sh(2026, 12, 2, 17, 30)).due == ()
