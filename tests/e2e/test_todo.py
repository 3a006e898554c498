"""A task's DingTalk 待办, end to end on the emulator: created once even when the create's answer
is lost, its due time moved on an approved extension, a head's tick answered with a prompt to
办结 (never a close), and marked done on 销号; moved when the responsible head changes (改派, a
roster with a new head); liaisons' 待办 by setting; a link to the task's dashboard page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.simulation import ROSTER
from bot.todo_job import sync_once
from storage.models import TaskStatus
from tests.emulator import Fault, OrgUser
from tests.helpers import DIRECTOR, HEAD, LIAISON, OFFICE, OTHER_HEAD, World

UNION = "union_zhujian"
CREATE = f"/v1.0/todo/users/{UNION}/tasks"


async def test_a_tasks_todo_is_created_once_moved_on_extension_and_closed_on_close(world: World) -> None:
    emulator = world.emulator
    emulator.users[HEAD] = OrgUser(HEAD, "王建华", union_id=UNION)
    emulator.fail_next(CREATE, Fault.LATE)  # created, but the answer comes after we gave up
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_all_units")
    [task] = world.tasks()

    await sync_once(world.engine, world.client, world.clock.now())
    [todo] = emulator.todos.of(UNION)
    assert todo.source_id == task.code and task.code in todo.subject and todo.executors == [UNION]
    await sync_once(world.engine, world.client, world.clock.now())  # finds it by sourceId, creates nothing
    assert len(emulator.todos.of(UNION)) == 1 and len([r for r in emulator.calls(CREATE) if r.method == "POST"]) == 1
    assert todo.due_ms == int(task.deadline.timestamp() * 1000)

    await world.say(HEAD, f"签收 {task.code}")
    await world.say(HEAD, f"延期 {task.code} 12月20日 乡镇管网图纸未移交，需补测")
    await world.say(DIRECTOR, f"同意延期 {task.code}")
    old_due = task.deadline
    [task] = world.tasks()
    assert task.deadline > old_due
    await sync_once(world.engine, world.client, world.clock.now())
    assert todo.due_ms == int(task.deadline.timestamp() * 1000) and not todo.done

    emulator.todos.tick(UNION, task.code)  # the head ticks it in DingTalk
    world.clock.advance(hours=7)
    await sync_once(world.engine, world.client, world.clock.now())
    await world.deliver_all()
    prompts = [d for d in emulator.to(HEAD, "user") if "待办已勾选完成" in d.text]
    assert len(prompts) == 1 and f"办结 {task.code}" in prompts[0].text
    assert world.tasks()[0].status is TaskStatus.IN_PROGRESS  # a tick never closes the task
    world.clock.advance(hours=7)
    await sync_once(world.engine, world.client, world.clock.now())
    await world.deliver_all()
    assert len([d for d in emulator.to(HEAD, "user") if "待办已勾选完成" in d.text]) == 1  # asked once

    await world.say(HEAD, f"办结 {task.code} 排查完毕，整改清单已报县政府办")
    await world.say(OFFICE, f"销号 {task.code}")
    assert world.tasks()[0].status is TaskStatus.CLOSED
    await sync_once(world.engine, world.client, world.clock.now() + timedelta(minutes=1))
    assert todo.done
    puts = len([r for r in emulator.calls(f"{CREATE}/{todo.id}") if r.method == "PUT"])
    await sync_once(world.engine, world.client, world.clock.now() + timedelta(minutes=2))
    assert len([r for r in emulator.calls(f"{CREATE}/{todo.id}") if r.method == "PUT"]) == puts  # done is done


def _org(world: World, *people: tuple[str, str]) -> None:
    for user_id, name in people:
        world.emulator.users[user_id] = OrgUser(user_id, name, union_id=f"union_{user_id}")


def _posts(world: World, union_id: str) -> int:
    return len([r for r in world.emulator.calls(f"/v1.0/todo/users/{union_id}/tasks") if r.method == "POST"])


async def test_reassign_closes_the_old_heads_todo_and_gives_the_new_head_one_once(world: World) -> None:
    emulator = world.emulator
    _org(world, (HEAD, "王建华"), (OTHER_HEAD, "李强"))
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_all_units")
    [task] = world.tasks()
    await sync_once(world.engine, world.client, world.clock.now())
    [old] = emulator.todos.of(f"union_{HEAD}")

    emulator.fail_next(f"/v1.0/todo/users/union_{OTHER_HEAD}/tasks", Fault.LATE)  # made, answer lost
    await world.say(OFFICE, f"改派 {task.code} 县应急局")
    [task] = world.tasks()
    await sync_once(world.engine, world.client, world.clock.now())
    assert old.done and "已转交" in old.subject and "县应急局" in old.subject  # closed, saying where it went
    await sync_once(world.engine, world.client, world.clock.now())  # finds the lost create by its sourceId
    [new] = emulator.todos.of(f"union_{OTHER_HEAD}")
    assert (new.source_id, new.done, _posts(world, f"union_{OTHER_HEAD}")) == (task.code, False, 1)
    assert new.due_ms == int(task.deadline.timestamp() * 1000) and "【督办】" in new.subject
    puts = len(emulator.calls(f"/v1.0/todo/users/union_{HEAD}/tasks/{old.id}"))
    await sync_once(world.engine, world.client, world.clock.now())  # all in step: nothing more is asked
    assert len(emulator.calls(f"/v1.0/todo/users/union_{HEAD}/tasks/{old.id}")) == puts

    await world.say(OFFICE, f"改派 {task.code} 县住建局")  # back: the old one reopens, none is made
    await sync_once(world.engine, world.client, world.clock.now())
    assert not old.done and "【督办】" in old.subject and new.done
    assert _posts(world, f"union_{HEAD}") == 1 and len(emulator.todos.of(f"union_{HEAD}")) == 1


async def test_a_new_head_on_the_roster_gets_the_todo_and_the_old_ones_is_closed(world: World,
                                                                                 tmp_path: Path) -> None:
    emulator = world.emulator
    _org(world, (HEAD, "王建华"), ("u_zhujian_new", "刘洋"))
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_all_units")
    [task] = world.tasks()
    await sync_once(world.engine, world.client, world.clock.now())
    [old] = emulator.todos.of(f"union_{HEAD}")

    roster = tmp_path / "roster.yaml"
    roster.write_text(ROSTER.read_text(encoding="utf-8").replace(
        "head: {id: u_zhujian, name: 王建华, title: 局长}", "head: {id: u_zhujian_new, name: 刘洋, title: 局长}"),
        encoding="utf-8")
    world.bot.load_roster(roster)
    emulator.fail_next("/v1.0/todo/users/union_u_zhujian_new/tasks", Fault.LATE)
    for _ in range(2):
        await sync_once(world.engine, world.client, world.clock.now())
    [new] = emulator.todos.of("union_u_zhujian_new")
    assert old.done and "刘洋" in old.subject and not new.done and new.source_id == task.code
    assert _posts(world, "union_u_zhujian_new") == 1


async def test_liaisons_get_a_todo_only_when_set_and_each_links_to_the_task_page(world: World) -> None:
    emulator = world.emulator
    _org(world, (HEAD, "王建华"), (LIAISON, "赵晓燕"))
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_all_units")
    [task] = world.tasks()
    await sync_once(world.engine, world.client, world.clock.now(), board_url="http://127.0.0.1:8787")
    [head] = emulator.todos.of(f"union_{HEAD}")
    assert emulator.todos.of(f"union_{LIAISON}") == [] and head.detail_url is None  # no phone reaches loopback

    await world.say("u_xianzhang", "交办 县住建局 道路修补 截止12月11日", group="cid_all_units")
    second = world.tasks()[1]
    await sync_once(world.engine, world.client, world.clock.now(), liaisons=True,
                    board_url="https://duban.example.gov.cn/")
    assert {t.source_id for t in emulator.todos.of(f"union_{LIAISON}")} == {task.code, second.code}
    [liaison] = [t for t in emulator.todos.of(f"union_{LIAISON}") if t.source_id == second.code]
    url = f"https://duban.example.gov.cn/board/task/{second.code}"
    assert liaison.detail_url == {"appUrl": url, "pcUrl": url} and liaison.executors == [f"union_{LIAISON}"]

    await world.say(HEAD, f"签收 {second.code}")
    await world.say(HEAD, f"办结 {second.code} 路面已修补完毕")
    await world.say(OFFICE, f"销号 {second.code}")
    await sync_once(world.engine, world.client, world.clock.now(), liaisons=True)
    assert liaison.done and all(t.done for t in emulator.todos.tasks.values() if t.source_id == second.code)


async def test_a_close_dingtalk_refuses_for_one_who_left_is_not_asked_again(world: World, tmp_path: Path) -> None:
    emulator = world.emulator
    _org(world, (HEAD, "王建华"), (OTHER_HEAD, "李强"))
    await world.say("u_xianzhang", "交办 县住建局 燃气隐患排查 截止12月10日", group="cid_all_units")
    [task] = world.tasks()
    await sync_once(world.engine, world.client, world.clock.now())
    [old] = emulator.todos.of(f"union_{HEAD}")
    del emulator.todos.tasks[old.id]  # gone with the person's account: DingTalk answers "task not exist"
    await world.say(OFFICE, f"改派 {task.code} 县应急局")
    for _ in range(3):
        await sync_once(world.engine, world.client, world.clock.now())
    assert len(emulator.calls(f"/v1.0/todo/users/union_{HEAD}/tasks/{old.id}")) == 1
    assert len(emulator.todos.of(f"union_{OTHER_HEAD}")) == 1
