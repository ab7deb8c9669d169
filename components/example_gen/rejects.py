"""Rejected manifest lines and the ingestion summary.

Nothing a user gives us is dropped silently: every manifest line either becomes one example in exactly one
split or one `Reject` with a reason from `REASONS`. The report written beside the examples holds one JSONL
file per reason (`<reason>.jsonl`, each record = the manifest line + `reason` + `detail`) and
`summary.json` whose counts add up: `sum(ingested.values()) + sum(rejected.values()) == read`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterable, Mapping

import tensorflow as tf

# Reasons, cheapest check first. The order is the order in which a line is checked.
MALFORMED_JSON = "malformed_json"          # not JSON, or not a JSON object
WRONG_TYPE = "wrong_type"                  # a known field has the wrong JSON type or value
MISSING_FIELD = "missing_field"            # the task (manifest name) needs a field the line lacks
CAPTION_TOO_LONG = "caption_too_long"      # len(text) > MediaConfig.max_caption_chars
DUPLICATE_ID = "duplicate_id"              # the id was already taken by an earlier line
MISSING_FILE = "missing_file"              # a media path that does not exist
EMPTY_FILE = "empty_file"                  # zero bytes
FILE_TOO_LARGE = "file_too_large"          # > MediaConfig.max_file_bytes
WRONG_MEDIA_KIND = "wrong_media_kind"      # e.g. the `audio` field points at a PNG
UNDECODABLE_MEDIA = "undecodable_media"    # truncated, corrupt or not media at all

REASONS = (MALFORMED_JSON, WRONG_TYPE, MISSING_FIELD, CAPTION_TOO_LONG, DUPLICATE_ID, MISSING_FILE,
           EMPTY_FILE, FILE_TOO_LARGE, WRONG_MEDIA_KIND, UNDECODABLE_MEDIA)

SUMMARY_FILE = "summary.json"


@dataclasses.dataclass(frozen=True)
class Reject:
    """One manifest line that did not become an example.

    Attributes:
      manifest: path of the manifest the line came from.
      line_number: 1-based line number inside it.
      line: the raw line text (without the newline).
      reason: one of `REASONS`.
      detail: human-readable explanation (which field, which file, what failed).
    """

    manifest: str
    line_number: int
    line: str
    reason: str
    detail: str

    def __post_init__(self):
        if self.reason not in REASONS:
            raise ValueError(f"unknown reject reason {self.reason!r}")

    def to_json(self) -> str:
        return json.dumps({"manifest": self.manifest, "line_number": self.line_number,
                           "line": self.line, "reason": self.reason, "detail": self.detail},
                          ensure_ascii=False, sort_keys=True)


class RejectedMedia(ValueError):
    """Raised by media decoding; carries the reject reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def make_summary(read: int, ingested: Mapping[str, int], rejected: Mapping[str, int]) -> Dict:
    """The summary dict; raises if the counts do not add up (that would be a lost line)."""
    ingested = {k: int(v) for k, v in sorted(ingested.items())}
    rejected = {k: int(v) for k, v in sorted(rejected.items()) if v}
    total = sum(ingested.values()) + sum(rejected.values())
    if total != read:
        raise AssertionError(f"ingestion lost lines: read {read}, accounted for {total}")
    return {"read": int(read), "ingested": ingested, "rejected": rejected}


def write_summary(report_dir: str, summary: Mapping) -> str:
    tf.io.gfile.makedirs(report_dir)
    path = os.path.join(report_dir, SUMMARY_FILE)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(summary, sort_keys=True, indent=1) + "\n")
    return path


def read_summary(report_dir: str) -> Dict:
    with tf.io.gfile.GFile(os.path.join(report_dir, SUMMARY_FILE)) as f:
        return json.load(f)


def write_rejects(report_dir: str, rejects: Iterable[Reject]) -> Dict[str, int]:
    """Writes one `<reason>.jsonl` per reason present, ordered by (manifest, line); returns counts."""
    by_reason: Dict[str, list] = {}
    for r in rejects:
        by_reason.setdefault(r.reason, []).append(r)
    tf.io.gfile.makedirs(report_dir)
    for reason, items in by_reason.items():
        items.sort(key=lambda r: (r.manifest, r.line_number))
        with tf.io.gfile.GFile(os.path.join(report_dir, f"{reason}.jsonl"), "w") as f:
            for r in items:
                f.write(r.to_json() + "\n")
    return {reason: len(items) for reason, items in by_reason.items()}


def read_rejects(report_dir: str) -> Dict[str, list]:
    """{reason: [record dict, ...]} for every reject file under `report_dir`."""
    out = {}
    for reason in REASONS:
        path = os.path.join(report_dir, f"{reason}.jsonl")
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                out[reason] = [json.loads(line) for line in f if line.strip()]
    return out
