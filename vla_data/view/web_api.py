"""JSON views of a web (vision-language) dataset: pages of samples, one sample, its images.

A sample is shown as its images, its turns (role + text, in order) and its boxes (pixels of the
stored image + label). `web_record` is the one place that knows how web samples are stored.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
from PIL import Image

from vla_data.shards import ShardDataset
from vla_data.sources.web_sample import WEB_FEATURES, web_sample_from_table

from .dataset_api import EpisodeTables, NotFound, mime_type

SAMPLES_PER_PAGE = 24


def is_web(ds: ShardDataset) -> bool:
    return all(name in ds.features for name in WEB_FEATURES)


def locate_sample(ds: ShardDataset, index: int) -> tuple[int, int]:
    if not 0 <= index < len(ds):
        raise NotFound(f"{ds.uri or ds.root}: no sample {index}; it has samples 0..{len(ds) - 1}")
    return ds.locate(index)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def web_record(table: pa.Table, row: int) -> dict[str, Any]:
    """Turns, encoded images and boxes (pixels of their stored image) of the sample at `row`."""
    sample = web_sample_from_table(table, row)
    return {
        "id": sample.id,
        "kind": sample.kind,
        "turns": [{"role": role, "text": text} for role, text in sample.turns],
        "images": sample.images,
        "boxes": [  # x_min, y_min, x_max, y_max
            {"image": image, "box": list(box), "label": label}
            for box, label, image in zip(sample.boxes, sample.box_labels, sample.box_image, strict=True)
        ],
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
        "id": record["id"],
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
