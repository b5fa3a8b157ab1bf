"""Reads an offline W&B run file (run-<id>.wandb) back into wandb's own protobuf records.

The file is wandb's LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks
of chunks, each `crc32c(4) length(2) type(1) data`, type 1 = a whole record, 2/3/4 = first/middle/last
piece. Each record is a `wandb.proto.wandb_internal_pb2.Record`. (Recent wandb releases moved their own
reader into the Go core; the records are still wandb's protobuf messages, parsed here with wandb's classes.)
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32768
HEADER = 7


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, "not a .wandb file"
    pos, pieces, records = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zero fill up to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER: pos + HEADER + length]
        pos += HEADER + length
        if kind == 2:
            pieces = chunk
            continue
        if kind == 3:
            pieces += chunk
            continue
        raw = pieces + chunk if kind == 4 else chunk
        pieces = b""
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(raw)
        records.append(rec)
    return records


def wait_complete(path: Path, timeout: float = 60.0) -> None:
    """Wait until the file holds its run's `exit` record: W&B's service may still be writing it after
    run.finish() returns."""
    deadline = time.time() + timeout
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in read_records(path)):
                return
        except Exception:  # a partly written last chunk
            pass
        if time.time() > deadline:
            raise TimeoutError(f"{path} has no exit record after {timeout} s")
        time.sleep(0.2)


def history(path: Path) -> list[dict]:
    """The logged rows: [{"_step": 3, "x": 1.5, ...}, ...] in order."""
    rows = []
    for rec in read_records(path):
        if rec.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item}
            if rec.history.HasField("step"):
                row.setdefault("_step", rec.history.step.num)
            rows.append(row)
    return rows


def config(path: Path) -> dict:
    """The run's config (from the run record and any later config updates), without W&B's own `_wandb`."""
    out = {}
    for rec in read_records(path):
        kind = rec.WhichOneof("record_type")
        updates = rec.run.config.update if kind == "run" else rec.config.update if kind == "config" else []
        for item in updates:
            out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    out.pop("_wandb", None)
    return out


def run_info(path: Path) -> dict:
    for rec in read_records(path):
        if rec.WhichOneof("record_type") == "run":
            r = rec.run
            return {"id": r.run_id, "project": r.project, "name": r.display_name, "tags": list(r.tags),
                    "group": r.run_group, "notes": r.notes}
    return {}


def summary(path: Path) -> dict:
    out = {}
    for rec in read_records(path):
        if rec.WhichOneof("record_type") == "summary":
            for item in rec.summary.update:
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out
