"""What a loader config will feed the model, checked before training: `vla-data loader check`.

Per source: samples, weight and expected share, camera -> slot mapping, the normalization stats
in use, whether the FAST cache is used, the longest token sequence against `max_tokens`, and one
sample's tokens decoded with prefix / postfix / loss / FAST positions marked.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pyarrow.compute as pc

from vla_data.schema import ACTION, IMAGE_PREFIX, STATE
from vla_data.shards.reader import open_arrow_file

from .config_check import ConfigError
from .robot import RobotDataset

log = logging.getLogger("vla_data.loader")


def camera_mappings(robot: RobotDataset) -> list[dict[str, str | None]]:
    """Per dataset of the source: model slot -> camera name (None: empty slot)."""
    return [
        {slot: (f[len(IMAGE_PREFIX) :] if f else None) for slot, f in slots.items()} for slots in robot.slots
    ]


def announce_cameras(robot: RobotDataset, index: int, explicit: bool) -> None:
    """Log the camera -> slot mapping; warn when it was assumed (cameras fill slots in order)."""
    for ds, mapping in zip(robot.datasets, camera_mappings(robot), strict=True):
        used = {c for c in mapping.values() if c}
        cameras = [n[len(IMAGE_PREFIX) :] for n, f in ds.features.items() if f.kind == "image"]
        text = ", ".join(f"{c} -> {s}" for s, c in mapping.items() if c) or "no cameras"
        dropped = [c for c in cameras if c not in used]
        if dropped:
            text += f"; unused: {', '.join(dropped)}"
        log.info("sources[%d] %s: cameras %s", index, ds.root, text)
        if not explicit and len(cameras) > 1:
            warnings.warn(
                f"sources[{index}] {ds.root}: cameras fill the model's slots in order ({text}); "
                'set "cameras": {slot: camera} in the source to choose',
                stacklevel=3,
            )


def longest_cached(robot: RobotDataset) -> tuple[int, int, int] | None:
    """(FAST ids, source index, steps covered) of the longest cached chunk, or None without caches."""
    if any(path is None for path in robot.cache_paths):
        return None
    best = (-1, 0, 0)
    for d, path in enumerate(robot.cache_paths):
        rows = int(robot.offsets[d + 1] - robot.offsets[d])
        lengths = pc.list_value_length(open_arrow_file(path).column("ids").slice(0, rows)).to_numpy()
        if len(lengths) and int(lengths.max()) > best[0]:
            best = (int(lengths.max()), int(robot.offsets[d] + np.argmax(lengths)), best[2])
        best = (best[0], best[1], best[2] + rows)
    return best


def check_cached_lengths(robot: RobotDataset, index: int, max_tokens: int, truncate: bool) -> int | None:
    """The exact token count of the sample with the longest cached FAST sequence; an error before
    training when it exceeds `max_tokens` (and truncation is off)."""
    longest = longest_cached(robot)
    if longest is None:
        return None
    sample = RobotDataset.__getitem__(robot, longest[1])  # a step of the whole source
    n = len(sample["tokens"].tokens)
    if n > max_tokens and not truncate:
        raise ConfigError(
            "max_tokens",
            f"sources[{index}] {sample['where']}: {n} tokens exceed max_tokens={max_tokens} (the longest "
            f"FAST sequence in the cache, {longest[0]} ids); raise max_tokens to >= {n} or set truncate",
        )
    return n


def marked_tokens(tokens, text) -> str:
    """One sample's tokens as text, runs marked: [prefix] [postfix] [loss] [FAST xN]."""
    decode = getattr(text, "decode", None)
    runs: list[tuple[str, list[int]]] = []
    for i, token in enumerate(tokens.tokens.tolist()):
        kind = (
            "FAST"
            if tokens.fast[i]
            else "loss"
            if tokens.loss[i]
            else "postfix"
            if tokens.ar[i]
            else "prefix"
        )
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(token)
        else:
            runs.append((kind, [token]))
    parts = []
    for kind, ids in runs:
        if kind == "FAST":
            parts.append(f"[FAST x{len(ids)}]")
            continue
        pieces = []
        for token in ids:
            special = {text.bos_id: "<bos>", text.eos_id: "<eos>", text.pad_id: "<pad>"}.get(token)
            pieces.append(special if special else decode([token]) if decode else f"<{token}>")
        parts.append(f"[{kind}]{''.join(pieces)!r}")
    return " ".join(parts)


def normalization_used(robot: RobotDataset, d: int) -> dict[str, Any]:
    out = {}
    for name, norm in ((ACTION, robot.action_norm[d]), (STATE, robot.state_norm[d])):
        if norm is not None:
            out[name] = {"mode": norm.mode, "offset": norm.offset.tolist(), "scale": norm.scale.tolist()}
    if robot.config.delta_action_dims:
        out[ACTION]["delta_action_dims"] = list(robot.config.delta_action_dims)
    return out


def check_loader(config, samples: int = 32) -> dict[str, Any]:
    """The report behind `vla-data loader check` (a LoaderConfig or a loader.json path)."""
    from . import make_loader

    loader = make_loader(config)
    config = loader.config
    total_weight = sum(s.weight for s in config.sources)
    epoch = loader.plan.samples_per_epoch
    report: dict[str, Any] = {"max_tokens": config.max_tokens, "samples_per_epoch": epoch, "sources": []}
    for i, (source, data) in enumerate(zip(config.sources, loader.sources, strict=True)):
        share = source.weight / total_weight
        entry: dict[str, Any] = {
            "index": i,
            "kind": source.kind,
            "paths": list(source.paths),
            "samples": len(data),
            "weight": source.weight,
            "share": share,
            "samples_per_epoch": round(share * epoch),
        }
        picks = np.linspace(0, len(data) - 1, min(samples, len(data))).astype(int)
        lengths = [len(data[int(p)]["tokens"].tokens) for p in picks]
        entry["tokens"] = {"longest_in_sample": max(lengths), "sample_size": len(picks)}
        if isinstance(data, RobotDataset):
            entry["cameras"] = camera_mappings(data)
            entry["fast_cache"] = [p is not None for p in data.cache_paths]
            entry["horizon"] = data.config.horizon
            entry["normalization"] = [normalization_used(data, d) for d in range(len(data.datasets))]
            cached = longest_cached(data)
            if cached is not None:
                entry["tokens"]["longest_cached"] = len(
                    RobotDataset.__getitem__(data, cached[1])["tokens"].tokens
                )
                entry["tokens"]["cached_steps"] = cached[2]
        longest = max(entry["tokens"].get("longest_cached", 0), entry["tokens"]["longest_in_sample"])
        entry["tokens"]["fits"] = longest <= config.max_tokens
        entry["example"] = marked_tokens(data[0]["tokens"], loader.prompt.text)
        report["sources"].append(entry)
    report["ok"] = all(s["tokens"]["fits"] for s in report["sources"])
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"max_tokens {report['max_tokens']}, {report['samples_per_epoch']} samples per epoch"]
    for s in report["sources"]:
        lines.append(
            f"\nsources[{s['index']}] {s['kind']} {', '.join(s['paths'])}: {s['samples']} samples, weight "
            f"{s['weight']:g} -> {100 * s['share']:.1f}% ({s['samples_per_epoch']} per epoch)"
        )
        for d, mapping in enumerate(s.get("cameras", [])):
            slots = ", ".join(f"{c or '(empty)'} -> {slot}" for slot, c in mapping.items())
            lines.append(f"  cameras[{d}]: {slots}")
            norm = s["normalization"][d]
            for name, n in norm.items():
                lines.append(f"  {name}: {n['mode']} normalization over {len(n['offset'])} dims")
            lines.append(f"  FAST cache: {'used' if s['fast_cache'][d] else 'not used (encoded per sample)'}")
        t = s["tokens"]
        measured = f"longest {t['longest_in_sample']} tokens in a sample of {t['sample_size']}"
        if "longest_cached" in t:
            measured += f"; longest over all {t['cached_steps']} cached steps {t['longest_cached']}"
        lines.append(f"  {measured}: {'fits' if t['fits'] else 'EXCEEDS'} max_tokens {report['max_tokens']}")
        lines.append(f"  example: {s['example']}")
    return "\n".join(lines)
