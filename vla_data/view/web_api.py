"""JSON views of a web (vision-language) dataset: pages of samples, one sample, its images.

A sample is shown as its images, its turns (role + text, in order) and its boxes (pixels of the
stored image + label). `web_record` is the one place that knows how web samples are stored.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pyarrow as pa
from PIL import Image

from vla_data.shards import ShardDataset

from .dataset_api import EpisodeTables, NotFound, mime_type

SAMPLES_PER_PAGE = 24
WEB_IMAGE = "observation.images.image"
# PaliGemma detection answers: <locY1><locX1><locY2><locX2> label, objects separated by " ; "
LOC_BOX = re.compile(r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>\s*([^;<]*)")
LOC_BINS = 1024


def is_web(ds: ShardDataset) -> bool:
    return "answer" in ds.features and WEB_IMAGE in ds.features


def locate_sample(ds: ShardDataset, index: int) -> tuple[int, int]:
    if not 0 <= index < len(ds):
        raise NotFound(f"{ds.uri or ds.root}: no sample {index}; it has samples 0..{len(ds) - 1}")
    return ds.locate(index)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def web_record(table: pa.Table, row: int) -> dict[str, Any]:
    """Turns, encoded images and boxes (pixels) of the sample at `row` of its episode table."""
    prompt = table.column("prompt")[row].as_py() if "prompt" in table.column_names else ""
    answer = table.column("answer")[row].as_py()
    kind = table.column("kind")[row].as_py() if "kind" in table.column_names else None
    images = [table.column(WEB_IMAGE)[row].as_py()]
    boxes = []
    if LOC_BOX.search(answer):
        width, height = image_size(images[0])
        for match in LOC_BOX.finditer(answer):
            y0, x0, y1, x1 = (int(v) / LOC_BINS for v in match.groups()[:4])
            boxes.append(
                {
                    "image": 0,
                    "box": [x0 * width, y0 * height, x1 * width, y1 * height],  # x_min, y_min, x_max, y_max
                    "label": match.group(5).strip(),
                }
            )
    return {
        "kind": kind,
        "turns": [{"role": "user", "text": prompt}, {"role": "assistant", "text": answer}],
        "images": images,
        "boxes": boxes,
    }


def _sample_json(ds: ShardDataset, tables: EpisodeTables, index: int, prefix: str) -> dict[str, Any]:
    episode, row = locate_sample(ds, index)
    record = web_record(tables.get(episode), row)
    images = []
    for j, data in enumerate(record["images"]):
        width, height = image_size(data)
        ext = "png" if mime_type(data) == "image/png" else "jpg"
        images.append({"url": f"{prefix}/image/{index}/{j}.{ext}", "width": width, "height": height})
    return {
        "index": index,
        "kind": record["kind"],
        "turns": record["turns"],
        "images": images,
        "boxes": record["boxes"],
        "source": {**ds.source_ref(episode), "row": row},
    }


def sample_page(
    ds: ShardDataset, tables: EpisodeTables, page: int, prefix: str, size: int = SAMPLES_PER_PAGE
) -> dict[str, Any]:
    pages = max(1, -(-len(ds) // size))
    if not 0 <= page < pages:
        raise NotFound(f"{ds.uri or ds.root}: no sample page {page}; it has pages 0..{pages - 1}")
    start = page * size
    indices = range(start, min(start + size, len(ds)))
    return {
        "page": page,
        "pages": pages,
        "total": len(ds),
        "samples": [_sample_json(ds, tables, i, prefix) for i in indices],
    }


def sample(ds: ShardDataset, tables: EpisodeTables, index: int, prefix: str) -> dict[str, Any]:
    return {**_sample_json(ds, tables, index, prefix), "total": len(ds)}


def sample_image(ds: ShardDataset, tables: EpisodeTables, index: int, image: int) -> tuple[bytes, str]:
    episode, row = locate_sample(ds, index)
    images = web_record(tables.get(episode), row)["images"]
    if not 0 <= image < len(images):
        raise NotFound(f"{ds.uri or ds.root}: sample {index} has {len(images)} images, not image {image}")
    return images[image], mime_type(images[image])
