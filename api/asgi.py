"""ASGI entry point for servers that import the app by name (`tresor serve --workers N`).

Settings come from the environment, as for `tresor serve`; so does whether each worker runs
the periodic jobs itself (TRESOR_INLINE_JOBS, set by `serve --jobs`).
"""

import os

from api.app import create_app

app = create_app(background_jobs=os.environ.get("TRESOR_INLINE_JOBS", "1") == "1")
