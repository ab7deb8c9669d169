"""Feature names and canonical media forms shared by ingestion, Transform, the trainer and serving.

The stages agree only through this module:

* ExampleGen writes *raw* tf.Examples (`RAW_*` keys): encoded media bytes, strings.
* Transform (`models.preprocessing.preprocessing_fn`) turns them into *model* features (`*_KEY` below),
  with core TensorFlow and tensorflow-text ops only, because TF Serving runs the same functions.
* The trainer reshapes the flat media features with `MediaConfig` and tokenizes per task resolution.
"""

from __future__ import annotations

import dataclasses

from models.configs import AudioConfig

# Raw features written by MultimodalExampleGen. Every example carries every key; a modality the example
# lacks is an empty list (SchemaGen would otherwise deprecate features missing from any one split).
RAW_ID = "id"                    # bytes []: example id, unique within a dataset
RAW_TEXT = "text"                # bytes []: caption or transcript (UTF-8)
RAW_LABEL = "label"              # bytes []: class name
RAW_IMAGE = "image"              # bytes []: JPEG
RAW_AUDIO = "audio"              # bytes []: 16-bit PCM WAV, mono, MediaConfig.audio.sample_rate
RAW_VIDEO_FRAMES = "video_frames"  # bytes [MediaConfig.video_frames]: JPEG per frame
RAW_TASK = "task"                # bytes []: task (split) name the example was written for

# Model features produced by Transform. Media are flat float32 lists (empty when the example lacks that
# modality) so that one schema serves every task split; `MediaConfig` gives their shapes.
TEXT_IDS_KEY = "text_ids"        # int64 [text_max_length], 0 = padding; all zeros when no text
IMAGE_KEY = "image"              # float32 [image_size * image_size * 3] in [-1, 1]
VIDEO_KEY = "video"              # float32 [video_frames * image_size * image_size * 3] in [-1, 1]
AUDIO_KEY = "audio"              # float32 [spectrogram_frames * num_mel_bins] log-mel
LABEL_ID_KEY = "label_id"        # int64 []: index into the label vocabulary, -1 when unlabelled
LABEL_KEY = "label"              # bytes []: class name passthrough ("" when unlabelled)
ID_KEY = "id"                    # bytes []: passthrough

TEXT_VOCAB_NAME = "text_wordpiece_vocab"
LABEL_VOCAB_NAME = "labels"


@dataclasses.dataclass(frozen=True)
class MediaConfig:
    """Canonical stored and transformed media forms.

    Attributes:
      image_size: side of transformed images and video frames (square, pixels).
      stored_image_max_side: bound on the JPEG side stored by ExampleGen.
      video_frames / video_fps: frames kept per video and the rate they are sampled at.
      audio_seconds: waveform length fed to the spectrogram (cropped or zero-padded).
      spectrogram_frames: time frames kept of the log-mel spectrogram (a multiple of the audio patch).
      text_max_length: token ids per caption after padding/truncation.
      max_caption_chars / max_file_bytes: ingestion rejects captions and files beyond these.
    """

    image_size: int = 64
    stored_image_max_side: int = 256
    video_frames: int = 8
    video_fps: float = 8.0
    audio: AudioConfig = AudioConfig()
    audio_seconds: float = 2.0
    spectrogram_frames: int = 192
    text_max_length: int = 16
    max_caption_chars: int = 512
    max_file_bytes: int = 64 * 1024 * 1024

    @property
    def audio_samples(self) -> int:
        return int(round(self.audio_seconds * self.audio.sample_rate))

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, 3)

    @property
    def video_shape(self):
        return (self.video_frames, self.image_size, self.image_size, 3)

    @property
    def spectrogram_shape(self):
        return (self.spectrogram_frames, self.audio.num_mel_bins)


DEFAULT_MEDIA = MediaConfig()
