"""The command families the bot answers, listed once, in the order 帮助 shows them.

Importing a family registers its commands (`@command`); the table is then put in this order, so it
does not depend on which module happened to import which family first. A family missing from this
list fails here, at start-up. Not in handlers/__init__.py: bot/dingtalk imports handlers.incoming,
and that must not load every handler (and the database) with it.
"""

from __future__ import annotations

from handlers import dashboard, duties, extensions, queries, reassign, reports, signing, tasks
from handlers.registry import COMMANDS

FAMILIES = (tasks, duties, reassign, extensions, queries, reports, signing, dashboard)

_RANK = {family.__name__: rank for rank, family in enumerate(FAMILIES)}
# a stable sort: within a family, the order its module declares its commands
_ORDERED = sorted(COMMANDS.items(), key=lambda item: _RANK[item[1].handler.__module__])
COMMANDS.clear()
COMMANDS.update(_ORDERED)
