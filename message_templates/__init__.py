"""Every sentence the bot says, as Jinja2 templates (*.j2), and their rendering: `Reply` / `Action`
(reply.py) and `render` (render.py). The lowest layer: it imports nothing of the project's."""
