"""The operator page (``billstream serve web``): server-rendered, no front-end build step."""
