"""Every sentence the bot says, as Jinja2 templates (*.j2); nothing else lives here."""
