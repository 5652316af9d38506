"""`vla-data view --export DIR`: the viewer's pages as a static site that opens from disk.

Every route the chosen episodes, samples and batches need is written as a file at the same path
the server uses. Browsers do not let a page `fetch` files from disk, so JSON routes are written as
`ROUTE.js` scripts calling `VLA.receive(ROUTE, data)`, which the page loads with a script tag;
frames and images are plain files. Open DIR/index.html.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .app import STATIC_FILES, ViewApp, static_file
from .dataset_api import EPISODES_PER_PAGE
from .web_api import SAMPLES_PER_PAGE, is_web

STATIC_MARKER = b"<!--static-export-->"


def export_site(
    app: ViewApp,
    out: str | Path,
    *,
    episodes: tuple[int, ...] = (0,),
    batches: int = 2,
    echo: Callable[[str], None] = lambda _: None,
) -> Path:
    """Write the static site for `episodes` of every robot dataset, the first page of every web
    dataset and the first `batches` loader batches. Returns DIR/index.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"files": 0, "bytes": 0}

    def write(route: str) -> Any:
        response = app.get(route)
        target = out / (route + ".js" if response.content_type == "application/json" else route)
        target.parent.mkdir(parents=True, exist_ok=True)
        if response.content_type == "application/json":
            body = f"VLA.receive({json.dumps(route)},{response.body.decode()});\n".encode()
            data = json.loads(response.body)
        else:
            body, data = response.body, None
        target.write_bytes(body)
        written["files"] += 1
        written["bytes"] += len(body)
        return data

    exported: dict[str, Any] = {"episodes": {}, "samples": {}, "batches": []}
    for k, ds in enumerate(app.datasets):
        prefix = f"api/d/{k}"
        write(f"{prefix}/summary")
        write(f"{prefix}/histograms")
        if is_web(ds):
            page = write(f"{prefix}/samples/0")
            exported["samples"][k] = [s["index"] for s in page["samples"]]
            for sample in page["samples"]:
                write(f"{prefix}/sample/{sample['index']}")
                for image in sample["images"]:
                    write(image["url"])
            continue
        chosen = sorted({e for e in episodes if 0 <= e < ds.num_episodes})
        exported["episodes"][k] = chosen
        for page in sorted({e // EPISODES_PER_PAGE for e in chosen} | {0}):
            write(f"{prefix}/episodes/{page}")
        for e in chosen:
            data = write(f"{prefix}/episode/{e}")
            if app.fast is not None:
                write(f"{prefix}/fast/{e}")
            for camera in data["cameras"]:
                ext = "png" if camera["encoding"] == "png" else "jpg"
                for t in range(data["length"]):
                    write(f"{prefix}/frame/{e}/{camera['name']}/{t}.{ext}")
        echo(f"dataset {k}: episodes {chosen}")
    if app.batches is not None:
        for n in range(min(batches, app.batches.batches_per_epoch)):
            batch = write(f"api/batch/{n}")
            for sample in batch["samples"]:
                write(sample["mask"]["url"])
                for image in sample["images"]:
                    write(image["url"])
            exported["batches"].append(n)
        echo(f"loader batches {exported['batches']}")

    index = {**app.index(), "static": exported, "samples_per_page": SAMPLES_PER_PAGE}
    (out / "api").mkdir(exist_ok=True)
    (out / "api/index.js").write_text(f'VLA.receive("api/index",{json.dumps(index, allow_nan=False)});\n')
    (out / "static").mkdir(exist_ok=True)
    for name in STATIC_FILES:
        body = static_file(name)
        if name == "index.html":
            (out / name).write_bytes(
                body.replace(STATIC_MARKER, b"<script>window.VLA_STATIC = true;</script>")
            )
        else:
            (out / "static" / name).write_bytes(body)
    echo(f"wrote {written['files']} files ({written['bytes'] / 1e6:.1f} MB) -> {out / 'index.html'}")
    return out / "index.html"
