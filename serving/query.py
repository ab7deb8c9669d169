"""Embedding, zero-shot classification and retrieval on top of a serving client.

Media files are prepared client-side into exactly the signature inputs, with the ingestion code's own
normalizers (`components.example_gen.media`), so a query sees the same canonical forms as training:
images -> JPEG, audio -> 16 kHz mono WAV, videos -> `MediaConfig.video_frames` JPEG frames plus the WAV of
their audio track. Similarities are cosines of the L2-normalized embeddings (no learned logit scale, as in
IMP's zero-shot evaluation); zero-shot class keys are the mean of prompt-template embeddings.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from models.features import DEFAULT_MEDIA, MediaConfig
from models.prompts import PROMPT_TEMPLATES

EMBED_SIGNATURES = {"text": "embed_text", "image": "embed_image", "audio": "embed_audio",
                    "video": "embed_video"}
EMBEDDING_OUTPUT = "embedding"
EXTENSIONS = {
    "image": (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"),
    "audio": (".wav", ".flac", ".mp3", ".ogg", ".oga", ".m4a"),
    "video": (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v"),
}
def media_kind(path: str) -> Optional[str]:
    """`image`, `audio` or `video` from a file extension (None when unknown)."""
    extension = os.path.splitext(path)[1].lower()
    return next((kind for kind, exts in EXTENSIONS.items() if extension in exts), None)


def prepare_media(kind: str, path: str, media: MediaConfig = DEFAULT_MEDIA) -> Dict[str, Any]:
    """One file -> its signature inputs (bytes values, no batch axis).

    Raises components.example_gen.rejects.RejectedMedia for unreadable or undecodable files.
    """
    from components.example_gen import media as media_lib

    data = media_lib.read_file(path, media)
    if kind == "image":
        return {"image_bytes": media_lib.normalize_image(data, media)}
    if kind == "audio":
        return {"audio_bytes": media_lib.normalize_audio(data, media)}
    if kind == "video":
        frames, wav = media_lib.normalize_video(data, media)
        return {"frames_bytes": frames, "audio_bytes": wav or b""}
    raise ValueError(f"unknown media kind {kind!r}")


def _stack(examples: Sequence[Mapping[str, Any]], keep: Sequence[str]) -> Dict[str, np.ndarray]:
    batch = {}
    for key in keep:
        values = [e[key] for e in examples]
        array = np.empty((len(values),) + np.shape(np.array(values[0], dtype=object)), dtype=object)
        for i, value in enumerate(values):
            array[i] = value
        batch[key] = array
    return batch


class Querier:
    """IMP queries against one served model through a GrpcClient or RestClient."""

    def __init__(self, client, model: str, version: Optional[int] = None,
                 media: MediaConfig = DEFAULT_MEDIA, batch_size: int = 8):
        self.client, self.model, self.version, self.media = client, model, version, media
        self.batch_size = batch_size
        self._inputs: Dict[str, List[str]] = {}

    def _signature_inputs(self, signature: str) -> List[str]:
        if signature not in self._inputs:
            self._inputs[signature] = self.client.signature_inputs(self.model, signature)
        return self._inputs[signature]

    def _embed(self, signature: str, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        out = self.client.predict(self.model, signature, batch, version=self.version)
        return np.asarray(out[EMBEDDING_OUTPUT], dtype=np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim]."""
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            batch = np.array([t.encode("utf-8") for t in texts[i:i + self.batch_size]], dtype=object)
            chunks.append(self._embed("embed_text", {"text": batch}))
        return np.concatenate(chunks, axis=0)

    def embed_files(self, kind: str, paths: Sequence[str]) -> np.ndarray:
        """float32 [len(paths), dim] for media files of one kind."""
        signature = EMBED_SIGNATURES[kind]
        wanted = self._signature_inputs(signature)  # e.g. embed_video may or may not take audio_bytes
        chunks = []
        for i in range(0, len(paths), self.batch_size):
            examples = [prepare_media(kind, p, self.media) for p in paths[i:i + self.batch_size]]
            chunks.append(self._embed(signature, _stack(examples, [k for k in wanted if k in examples[0]])))
        return np.concatenate(chunks, axis=0)

    def zero_shot(self, kind: str, path: str, labels: Sequence[str],
                  templates: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """Cosine of the file's embedding with each label's prompt-ensemble key."""
        templates = list(templates or PROMPT_TEMPLATES[kind])
        prompts = [t.format(label=label) for label in labels for t in templates]
        keys = self.embed_texts(prompts).reshape(len(labels), len(templates), -1).mean(axis=1)
        keys /= np.maximum(np.linalg.norm(keys, axis=-1, keepdims=True), 1e-12)
        scores = self.embed_files(kind, [path])[0] @ keys.T
        order = np.argsort(-scores)
        return {"file": path, "kind": kind, "prompts": templates,
                "scores": {labels[i]: float(scores[i]) for i in order}, "top": labels[int(order[0])]}

    def retrieve_media(self, text: str, folder: str, top_k: Optional[int] = None) -> Dict[str, Any]:
        """Ranks the folder's media files (all kinds) by cosine with `text`."""
        by_kind: Dict[str, List[str]] = {}
        for name in sorted(os.listdir(folder)):
            kind = media_kind(name)
            if kind is not None:
                by_kind.setdefault(kind, []).append(os.path.join(folder, name))
        if not by_kind:
            known = ", ".join(sorted(sum(EXTENSIONS.values(), ())))
            raise ValueError(f"{folder} holds no media files ({known})")
        query = self.embed_texts([text])[0]
        ranked: List[Tuple[float, str, str]] = []
        for kind, paths in by_kind.items():
            scores = self.embed_files(kind, paths) @ query
            ranked.extend((float(s), p, kind) for s, p in zip(scores, paths))
        ranked.sort(key=lambda r: -r[0])
        return {"query": text, "results": [{"file": p, "kind": k, "score": s}
                                           for s, p, k in ranked[:top_k]]}

    def rank_texts(self, kind: str, path: str, texts: Sequence[str],
                   top_k: Optional[int] = None) -> Dict[str, Any]:
        """Ranks `texts` by cosine with a media file's embedding."""
        scores = self.embed_texts(texts) @ self.embed_files(kind, [path])[0]
        order = np.argsort(-scores)[:top_k]
        return {"query": path, "kind": kind,
                "results": [{"text": texts[i], "score": float(scores[i])} for i in order]}
