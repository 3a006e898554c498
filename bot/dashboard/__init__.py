"""The 督查室 dashboard (issue 14): read-only web pages served by `duban run` under /board/."""

PREFIX = "/board"  # here, not in app.py: a link to a page must not load the web server (start-up)
