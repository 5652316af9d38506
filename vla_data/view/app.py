"""What `vla-data view` shows: a target (a dataset or a loader config) and its routes.

Routes are paths, so the same tree serves from the HTTP server and as files of a static export:

    api/index                                 datasets, loader, tokenizer
    api/d/K/summary | histograms              dataset K: manifest view, value histograms
    api/d/K/list/tasks|shards|skipped/P       more of the manifest's lists
    api/d/K/episodes/P | episode/E | fast/E   episode index page P, episode E's numbers, FAST overlay
    api/d/K/frame/E/CAMERA/T.jpg              one stored frame, bytes as in the shard
    api/d/K/samples/P | sample/I | image/I/J.png   web samples
    api/batch/N | batch/N/image/B/SLOT.png | batch/N/mask/B.png   loader batch N
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vla_data.shards import ShardDataset
from vla_data.storage import is_uri
from vla_data.tokenizers.fast import FastTokenizer

from . import dataset_api, web_api
from .dataset_api import EpisodeTables, NotFound
from .fast_api import fast_reconstruction

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


@dataclass
class Response:
    body: bytes
    content_type: str

    @classmethod
    def json(cls, data: Any) -> Response:
        return cls(json.dumps(data, allow_nan=False, separators=(",", ":")).encode(), "application/json")


def static_file(name: str) -> bytes:
    return resources.files("vla_data.view").joinpath("static", name).read_bytes()


class ViewApp:
    """Datasets (and batches, for a loader config) behind the viewer's routes."""

    def __init__(self, target: str | Path, tokenizer: str | Path | None = None):
        self.target = str(target)
        self.config = None
        if not is_uri(target) and Path(target).is_file():
            from vla_data.loader import LoaderConfig  # torch: only for loader configs

            self.config = LoaderConfig.load(target)
            paths = list(dict.fromkeys(p for s in self.config.sources for p in s.paths))
            tokenizer = tokenizer or self.config.fast_tokenizer
        elif is_uri(target) or (Path(target) / "manifest.json").exists() or Path(target).is_dir():
            paths = [self.target]
        else:
            raise FileNotFoundError(
                f"{target}: no such dataset or loader config; give a converted dataset folder "
                "(with manifest.json), its URI, or a loader.json"
            )
        self.datasets = [ShardDataset(p) for p in paths]
        self.tables = [EpisodeTables(ds) for ds in self.datasets]
        self.fast = FastTokenizer.from_pretrained(tokenizer) if tokenizer else None
        self.tokenizer_path = str(tokenizer) if tokenizer else None
        self.batches = None
        if self.config is not None:
            from .batch_api import BatchView

            self.batches = BatchView(self.config, {p: k for k, p in enumerate(paths)})

    def index(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "datasets": [
                {
                    "id": k,
                    "path": ds.uri or str(ds.root),
                    "kind": "web" if web_api.is_web(ds) else "robot",
                    "episodes": ds.num_episodes,
                    "frames": len(ds),
                    "tasks": len(ds.manifest.tasks),
                }
                for k, ds in enumerate(self.datasets)
            ],
            "loader": None
            if self.batches is None
            else {"config": self.config.to_json(), "batches_per_epoch": self.batches.batches_per_epoch},
            "fast": None
            if self.fast is None
            else {"path": self.tokenizer_path, "horizon": self.fast.time_horizon, "mode": self.fast.mode},
        }

    def get(self, path: str) -> Response:
        """The response for a route; NotFound for anything else."""
        path = path.strip("/")
        if path in ("", "index.html"):
            return Response(static_file("index.html"), STATIC_FILES["index.html"])
        parts = path.split("/")
        if parts[0] == "static" and len(parts) == 2 and parts[1] in STATIC_FILES:
            return Response(static_file(parts[1]), STATIC_FILES[parts[1]])
        if parts == ["api", "index"]:
            return Response.json(self.index())
        if parts[:2] == ["api", "d"] and len(parts) >= 4:
            return self._dataset(_number(parts[2]), parts[3:])
        if parts[:2] == ["api", "batch"] and len(parts) >= 3:
            return self._batch(parts[2:])
        raise NotFound(f"no such page: /{path}")

    def _dataset(self, k: int, parts: list[str]) -> Response:
        if not 0 <= k < len(self.datasets):
            raise NotFound(f"no dataset {k}; the viewer has datasets 0..{len(self.datasets) - 1}")
        ds, tables, prefix = self.datasets[k], self.tables[k], f"api/d/{k}"
        view, args = parts[0], parts[1:]
        if view == "summary" and not args:
            return Response.json(
                {**dataset_api.summary(ds), "kind": "web" if web_api.is_web(ds) else "robot"}
            )
        if view == "histograms" and not args:
            return Response.json(dataset_api.histograms(ds))
        if view == "list" and len(args) == 2:
            return Response.json(dataset_api.listing(ds, args[0], _number(args[1])))
        if view == "episodes" and len(args) == 1:
            return Response.json(dataset_api.episode_page(ds, _number(args[0])))
        if view == "episode" and len(args) == 1:
            return Response.json(dataset_api.episode_arrays(ds, _number(args[0])))
        if view == "fast" and len(args) == 1:
            if self.fast is None:
                raise NotFound("no FAST tokenizer: start the viewer with --tokenizer TOKDIR")
            return Response.json(fast_reconstruction(ds, self.fast, _number(args[0])))
        if view == "frame" and len(args) == 3:
            data, mime = dataset_api.frame(ds, tables, _number(args[0]), args[1], _number(_stem(args[2])))
            return Response(data, mime)
        if view == "samples" and len(args) == 1:
            return Response.json(web_api.sample_page(ds, tables, _number(args[0]), prefix))
        if view == "sample" and len(args) == 1:
            return Response.json(web_api.sample(ds, tables, _number(args[0]), prefix))
        if view == "image" and len(args) == 2:
            data, mime = web_api.sample_image(ds, tables, _number(args[0]), _number(_stem(args[1])))
            return Response(data, mime)
        raise NotFound(f"no such dataset view: {'/'.join(parts)}")

    def _batch(self, parts: list[str]) -> Response:
        if self.batches is None:
            raise NotFound(
                f"{self.target} is a dataset; batches need a loader config (loader.json) as TARGET"
            )
        n = _number(parts[0])
        if len(parts) == 1:
            return Response.json(self.batches.batch_json(n))
        if parts[1] == "image" and len(parts) == 4:
            return Response(self.batches.image_png(n, _number(parts[2]), _stem(parts[3])), "image/png")
        if parts[1] == "mask" and len(parts) == 3:
            return Response(self.batches.mask_png(n, _number(_stem(parts[2]))), "image/png")
        raise NotFound(f"no such batch view: {'/'.join(parts)}")


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise NotFound(f"{text!r} is not a number") from None
