"""The 督查室 dashboard (issue 14): read-only web pages served by `duban run` under /board/."""
