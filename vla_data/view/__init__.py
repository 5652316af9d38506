"""`vla-data view`: look at a converted dataset, or the batches of a loader config, in the browser.

    app = ViewApp("out/", tokenizer="tok/")       # or ViewApp("loader.json")
    with ViewServer(app, port=0) as server:       # standard-library HTTP server on 127.0.0.1
        print(server.url)
    export_site(app, "site/", episodes=(0, 1))    # the same pages as files; open site/index.html

Pages, JSON routes and the static export are described in `app.py` and `export.py`; the HTML, JS
and CSS ship in `static/` (no CDN, no build step).
"""

from .app import Response, ViewApp
from .dataset_api import NotFound
from .export import export_site
from .server import ViewServer

__all__ = ["NotFound", "Response", "ViewApp", "ViewServer", "export_site"]
