"""DingTalk's own expiries, kept by the emulator on the test's clock: a message's session webhook
works ~90 minutes (sessionWebhookExpiredTime), after which a reply through it is refused and goes
through the outbox instead."""

from __future__ import annotations

from tests.helpers import OFFICE, World


async def test_a_reply_after_the_session_webhook_expired_goes_through_the_outbox(world: World) -> None:
    emulator = world.emulator
    emulator.follow(world.clock.now)
    frame = emulator.robot_message("帮助", sender=OFFICE, group=False)
    world.clock.advance(minutes=91)  # the message waited (a redelivery, a slow start): its webhook is dead
    await world.push(frame)
    assert emulator.to(f"cid{OFFICE}single", "webhook") == []
    await world.deliver_all()
    [reply] = emulator.to(OFFICE, "user")
    assert "帮助" in reply.text or "督办" in reply.text

    await world.say(OFFICE, "帮助")  # a fresh message: its webhook works
    assert len(emulator.to(f"cid{OFFICE}single", "webhook")) == 1
