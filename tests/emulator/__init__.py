"""A local DingTalk for tests: see server.py."""

from tests.emulator.server import CORP_ID, ROBOT_DINGTALK_ID, Delivery, Department, Emulator, Fault, OrgUser

__all__ = ["CORP_ID", "ROBOT_DINGTALK_ID", "Delivery", "Department", "Emulator", "Fault", "OrgUser"]
