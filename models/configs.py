"""Model configurations as frozen dataclasses, with the paper's size names.

Every config round-trips through plain dicts (`to_dict` / `from_dict`) so that it can be stored next to a
checkpoint, passed through TFX `custom_config`, and rebuilt for export. Sizes (see `../shared/IMP_SPEC.md`
section 5):

| name      | layers | d_model | d_ff | heads | experts x MoE layers |
|-----------|--------|---------|------|-------|----------------------|
| tiny      | 2      | 64      | 128  | 2     | 4 x last 1           |
| small     | 4      | 192     | 768  | 3     | 8 x last 2           |
| B         | 12     | 768     | 3072 | 12    | dense                |
| MoE-B     | 12     | 768     | 3072 | 12    | 16 x last 6          |
| L         | 24     | 1024    | 4096 | 16    | dense                |
| MoE-L     | 24     | 1024    | 4096 | 16    | 16 x last 6          |

`tiny-dense` and `small-dense` are the same sizes without experts (for dense-vs-MoE benchmarks).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

MODALITIES = ("vision", "audio", "text")
"""Encoder-side modalities. Images and videos share the `vision` embedder (an image is a 1-frame video
tiled in time), exactly as in IMP."""

INPUT_KINDS = {"image": "vision", "video": "vision", "audio": "audio", "text": "text"}
"""User-facing input kinds and the encoder modality that embeds each."""


@dataclasses.dataclass(frozen=True)
class MoeConfig:
    """Sparse Mixture-of-Experts settings of the shared encoder.

    Attributes:
      num_experts: experts per MoE layer (0 disables MoE).
      num_moe_layers: how many layers use a MoE MLP; they are the last ones of the stack (IMP's `last`).
      capacity_factor: expert capacity multiplier; capacity = round(cf * tokens_per_group / experts).
      routing: "experts_choose" (IMP default) or "tokens_choose".
      top_k: experts per token for tokens-choose routing.
      batch_priority_routing: tokens-choose only: route the most confident tokens first.
      group_size: maximum tokens per routing group.
      min_capacity: lower bound of the per-expert capacity.
      router_z_loss_weight / load_balance_loss_weight: coefficients of the auxiliary losses (IMP: 1.0).
    """

    num_experts: int = 0
    num_moe_layers: int = 0
    capacity_factor: float = 1.0
    routing: str = "experts_choose"
    top_k: int = 1
    batch_priority_routing: bool = False
    group_size: int = 2048
    min_capacity: int = 0
    router_z_loss_weight: float = 1.0
    load_balance_loss_weight: float = 1.0

    @property
    def enabled(self) -> bool:
        return self.num_experts > 0 and self.num_moe_layers > 0


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The shared pre-LN Transformer encoder."""

    num_layers: int = 2
    d_model: int = 64
    d_ff: int = 128
    num_heads: int = 2
    qk_layernorm: bool = False
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    moe: MoeConfig = MoeConfig()

    @property
    def moe_layer_indices(self) -> Tuple[int, ...]:
        """Indices of the layers whose MLP is sparse (the last `num_moe_layers`)."""
        if not self.moe.enabled:
            return ()
        return tuple(range(self.num_layers - self.moe.num_moe_layers, self.num_layers))


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Tubelet embedding for images and videos.

    Attributes:
      patch: (frames, height, width) of one tubelet; an image is tiled to `patch[0]` frames.
      max_input: (frames, height, width) of the largest input; positional tables have
        `max_input[i] // patch[i]` rows per axis and every smaller input indexes them by its normalized
        coordinates (dilated nearest lookup), so resolution and frame count may change per task.
    """

    patch: Tuple[int, int, int] = (2, 8, 8)
    max_input: Tuple[int, int, int] = (16, 128, 128)
    channels: int = 3

    @property
    def token_dim(self) -> int:
        return self.patch[0] * self.patch[1] * self.patch[2] * self.channels

    @property
    def pos_buckets(self) -> Tuple[int, int, int]:
        return tuple(m // p for m, p in zip(self.max_input, self.patch))


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Log-mel spectrogram patch embedding.

    Attributes:
      sample_rate: canonical waveform rate (Hz) of stored audio.
      frame_length / frame_step / fft_length: STFT settings in samples.
      num_mel_bins: mel bands (the spectrogram's second axis).
      patch: (time frames, mel bins) of one patch.
      max_input: (time frames, mel bins) of the largest spectrogram (positional table size).
    """

    sample_rate: int = 16000
    frame_length: int = 400
    frame_step: int = 160
    fft_length: int = 512
    num_mel_bins: int = 64
    lower_edge_hz: float = 60.0
    upper_edge_hz: float = 7800.0
    patch: Tuple[int, int] = (16, 16)
    max_input: Tuple[int, int] = (1024, 64)

    @property
    def token_dim(self) -> int:
        return self.patch[0] * self.patch[1]

    @property
    def pos_buckets(self) -> Tuple[int, int]:
        return tuple(m // p for m, p in zip(self.max_input, self.patch))


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Token-id embedding. `vocab_size` is replaced by the learned vocabulary's size at train time."""

    vocab_size: int = 2048
    max_length: int = 16
    max_positions: int = 512
    pad_id: int = 0


@dataclasses.dataclass(frozen=True)
class HeadsConfig:
    """Output heads: per-pair common-space MLPs, temperatures and named classifiers.

    Attributes:
      d_common: width of the shared contrastive space.
      temperature_init: initial learnable temperature per modality pair (1.0 for MoE in IMP, 0.2 dense).
      classifiers: (name, num_classes) pairs; each becomes a Dense head on pooled features.
    """

    d_common: int = 64
    temperature_init: float = 0.2
    classifiers: Tuple[Tuple[str, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class ImpConfig:
    """The whole IMP model: shared encoder plus thin modality-specific parts."""

    name: str = "tiny"
    encoder: EncoderConfig = EncoderConfig()
    vision: VisionConfig = VisionConfig()
    audio: AudioConfig = AudioConfig()
    text: TextConfig = TextConfig()
    heads: HeadsConfig = HeadsConfig()

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ImpConfig":
        return _from_dict(cls, data)

    def replace(self, **changes: Any) -> "ImpConfig":
        return dataclasses.replace(self, **changes)

    def with_vocab_size(self, vocab_size: int) -> "ImpConfig":
        return self.replace(text=dataclasses.replace(self.text, vocab_size=int(vocab_size)))

    def with_classifiers(self, classifiers: Dict[str, int]) -> "ImpConfig":
        heads = dataclasses.replace(self.heads, classifiers=tuple(sorted(
            (str(k), int(v)) for k, v in classifiers.items())))
        return self.replace(heads=heads)


def _from_dict(cls, data: Dict[str, Any]):
    """Rebuilds nested frozen dataclasses from `dataclasses.asdict` output (lists become tuples)."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects a dict, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _from_dict(type(default), value)
        elif isinstance(default, tuple):
            kwargs[key] = _to_tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _to_tuple(value):
    if isinstance(value, (list, tuple)):
        return tuple(_to_tuple(v) for v in value)
    return value


def _moe(num_experts: int, num_moe_layers: int) -> MoeConfig:
    return MoeConfig(num_experts=num_experts, num_moe_layers=num_moe_layers)


_PAPER_VISION = VisionConfig(patch=(4, 16, 16), max_input=(64, 512, 512))
_PAPER_AUDIO = AudioConfig(frame_length=2048, frame_step=1024, fft_length=2048, num_mel_bins=128,
                           patch=(16, 16), max_input=(1024, 128))
_PAPER_TEXT = TextConfig(vocab_size=32100, max_length=16, max_positions=4096)
_PAPER_HEADS = HeadsConfig(d_common=1024, temperature_init=0.2)
_PAPER_MOE_HEADS = HeadsConfig(d_common=1024, temperature_init=1.0)


def _paper(name, layers, d, ff, heads, moe: Optional[MoeConfig]) -> ImpConfig:
    return ImpConfig(
        name=name,
        encoder=EncoderConfig(num_layers=layers, d_model=d, d_ff=ff, num_heads=heads,
                              qk_layernorm=moe is not None, moe=moe or MoeConfig()),
        vision=_PAPER_VISION, audio=_PAPER_AUDIO, text=_PAPER_TEXT,
        heads=_PAPER_MOE_HEADS if moe is not None else _PAPER_HEADS)


_TINY = ImpConfig(
    name="tiny",
    encoder=EncoderConfig(num_layers=2, d_model=64, d_ff=128, num_heads=2, qk_layernorm=True,
                          moe=_moe(4, 1)),
    vision=VisionConfig(patch=(2, 8, 8), max_input=(16, 64, 64)),
    audio=AudioConfig(num_mel_bins=64, patch=(16, 16), max_input=(512, 64)),
    text=TextConfig(vocab_size=512, max_length=12, max_positions=64),
    heads=HeadsConfig(d_common=64, temperature_init=1.0),
)

_SMALL = ImpConfig(
    name="small",
    encoder=EncoderConfig(num_layers=4, d_model=192, d_ff=768, num_heads=3, qk_layernorm=True,
                          moe=_moe(8, 2)),
    vision=VisionConfig(patch=(2, 8, 8), max_input=(16, 128, 128)),
    audio=AudioConfig(num_mel_bins=64, patch=(16, 16), max_input=(1024, 64)),
    text=TextConfig(vocab_size=2048, max_length=16, max_positions=128),
    heads=HeadsConfig(d_common=128, temperature_init=1.0),
)


def _dense(config: ImpConfig, name: str) -> ImpConfig:
    encoder = dataclasses.replace(config.encoder, qk_layernorm=False, moe=MoeConfig())
    return config.replace(name=name, encoder=encoder,
                          heads=dataclasses.replace(config.heads, temperature_init=0.2))


CONFIGS: Dict[str, ImpConfig] = {
    "tiny": _TINY,
    "tiny-dense": _dense(_TINY, "tiny-dense"),
    "small": _SMALL,
    "small-dense": _dense(_SMALL, "small-dense"),
    "B": _paper("B", 12, 768, 3072, 12, None),
    "MoE-B": _paper("MoE-B", 12, 768, 3072, 12, _moe(16, 6)),
    "L": _paper("L", 24, 1024, 4096, 16, None),
    "MoE-L": _paper("MoE-L", 24, 1024, 4096, 16, _moe(16, 6)),
}


def get_config(name: str) -> ImpConfig:
    """Returns the named preset (case-sensitive names as in the paper: `B`, `MoE-B`, ...)."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}") from None
