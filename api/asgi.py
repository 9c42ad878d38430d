"""ASGI entry point for servers that import the app by name (`tresor serve --workers N`).

Settings come from the environment, as for `tresor serve`.
"""

from api.app import create_app

app = create_app()
