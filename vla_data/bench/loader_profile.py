"""`bench loader --profile`: where a loader sample's time goes, stage by stage, in one process."""

from __future__ import annotations

import pickle
import time
from typing import Any

IPC_BATCHES = 30  # batches whose hand-over is timed (after the stages' batches)
STAGES = ("locate", "read", "normalize", "FAST ids", "prompt", "image decode", "collate", "IPC")


def profile_loader(loader, batches: int) -> dict[str, Any]:
    """Microseconds per sample of each stage over `batches` batches of a robot-only loader.

    Batches are built in this process by the code the DataLoader runs (`__getitems__`: a whole
    batch at a time, each stage once per batch, charged per sample); "collate" is allocating the
    batch buffer (in a worker: in shared memory) and finishing it, "IPC" what handing a worker's
    batch over costs: pickling its shared-memory tensors with the DataLoader's pickler and
    unpickling them (here in one process, so without the pipe; timed on further batches). `bound_us` is the bound of `bench
    loader` measured alongside: after each batch, its frames decoded again with `decode_into` into
    the same batch rows (same frames, same memory, nothing else), CPU time per sample."""
    from multiprocessing.reduction import ForkingPickler

    import numpy as np
    import torch.multiprocessing  # noqa: F401  registers the tensor reducers the DataLoader uses

    from vla_data.bench.loader import stored_frames
    from vla_data.images import decode_into
    from vla_data.loader.robot import RobotDataset
    from vla_data.loader.stage_timer import StageTimer

    robot = loader.sources[0]
    if not isinstance(robot, RobotDataset) or len(loader.sources) != 1:
        raise ValueError("profile_loader needs a loader with one robot source")
    collate = loader.dataloader.collate_fn
    draft = robot.config.image_decode == "draft"
    keys = iter(loader.dataloader.batch_sampler)
    timer = StageTimer()
    samples_done, bound = 0, 0.0
    for _ in range(batches):
        batch_keys = next(keys)
        timer.start()
        batch = collate.assemble(loader.sources, batch_keys, timer)
        # the bound: the same frames decoded again into the same batch rows, nothing else
        frames = stored_frames(robot, robot.source_steps(np.array([i for _, i in batch_keys])))
        rows = {slot: batch["images"][slot].permute(0, 2, 3, 1).numpy() for slot in frames}  # [B, h, w, 3]
        start = time.process_time()
        for slot, views in frames.items():
            for b, data in enumerate(views):
                decode_into(data, rows[slot][b], draft=draft)
        bound += time.process_time() - start
        del rows, batch
        samples_done += len(batch_keys)
    per_sample = {stage: timer.seconds[stage] / samples_done * 1e6 for stage in STAGES}
    # IPC apart: moving a batch into shared memory here copies it (a worker allocates it there),
    # which would leave every stage above with colder caches than the loader sees
    ipc, ipc_samples = 0.0, 0
    for batch_keys, _ in zip(loader.dataloader.batch_sampler, range(IPC_BATCHES), strict=False):
        batch = collate.assemble(loader.sources, batch_keys)
        for tensor in _tensors(batch):
            tensor.share_memory_()  # where a worker's collate allocates them
        start = time.thread_time()  # this thread: not the thread that serves the file descriptors
        pickle.loads(bytes(ForkingPickler.dumps(batch)))
        ipc += time.thread_time() - start
        ipc_samples += len(batch_keys)
    per_sample["IPC"] = ipc / max(ipc_samples, 1) * 1e6
    return {
        "samples": samples_done,
        "us_per_sample": per_sample,
        "total_us": sum(per_sample.values()),
        "bound_us": bound / samples_done * 1e6,
    }


def _tensors(batch: dict[str, Any]):
    for value in batch.values():
        if isinstance(value, dict):
            yield from _tensors(value)
        elif hasattr(value, "share_memory_"):
            yield value


def format_profile(profile: dict[str, Any]) -> str:
    total = profile["total_us"]
    lines = [f"per-sample profile (whole-batch code path, {profile['samples']} samples, CPU time)"]
    lines.append(f"{'stage':<16}{'us/sample':>10}{'share':>8}")
    for stage, us in profile["us_per_sample"].items():
        lines.append(f"{stage:<16}{us:>10.1f}{us / total:>8.0%}")
    lines.append(f"{'total':<16}{total:>10.1f}")
    in_process = total - profile["us_per_sample"]["IPC"]
    lines.append(f"{'without IPC':<16}{in_process:>10.1f}   (num_workers=0)")
    bound = profile["bound_us"]
    lines.append(
        f"{'decode+resize bound':<16}{bound:>10.1f}   (CPU, the same frames into the same rows; "
        f"overhead without IPC {in_process - bound:.0f} us/sample)"
    )
    outside = in_process - profile["us_per_sample"]["image decode"]
    lines.append(
        f"{'outside images':<16}{outside:>10.1f}   (locate, read, normalize, FAST ids, prompt, collate)"
    )
    return "\n".join(lines)
