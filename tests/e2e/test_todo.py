"""A task's DingTalk 待办, end to end on the emulator: created once even when the create's answer
is lost, its due time moved on an approved extension, a head's tick answered with a prompt to
办结 (never a close), and marked done on 销号."""

from __future__ import annotations

from datetime import timedelta

from bot.todo_job import sync_once
from storage.models import TaskStatus
from tests.emulator import Fault, OrgUser
from tests.helpers import DIRECTOR, HEAD, OFFICE, World

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
