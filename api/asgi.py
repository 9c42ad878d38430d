"""ASGI entry point for servers that import the app by name (`tresor serve --workers N`).

Settings come from the environment, as for `tresor serve`; so does whether each worker runs
the periodic jobs itself (`Settings.inline_jobs`, set by `serve --jobs`).
"""

from api.app import create_app

app = create_app(long_running=True)
