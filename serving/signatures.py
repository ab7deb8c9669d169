"""The TF Serving signatures of an IMP export: raw inputs in, the training preprocessing inside.

`ImpServingModule` wraps an unsharded, restored `ImpModel` with the Transform vocabularies (as SavedModel
assets) and exposes these Predict signatures (names and I/O are the serving contract):

| signature           | inputs                                                   | outputs                              |
|---------------------|----------------------------------------------------------|--------------------------------------|
| `embed_text`        | `text` string [B]                                        | `embedding` float32 [B, d]           |
| `embed_text_for_audio` | `text` string [B]                                     | `embedding` float32 [B, d]           |
| `embed_image`       | `image_bytes` string [B] (JPEG/PNG/GIF/BMP)              | `embedding` float32 [B, d]           |
| `embed_audio`       | `audio_bytes` string [B] (16 kHz PCM16 WAV)              | `embedding` float32 [B, d]           |
| `embed_video`       | `frames_bytes` string [B, F] (JPEG per frame)            | `embedding` float32 [B, d]           |
| `embed_video_audio` | `frames_bytes` string [B, F], `audio_bytes` string [B]   | `embedding` float32 [B, d]           |
| `zero_shot`         | `image_bytes` string [B], `class_names` string [C]       | `scores`, `probabilities` float32 [B, C] |
| `zero_shot_audio`   | `audio_bytes` string [B], `class_names` string [C]       | `scores`, `probabilities` float32 [B, C] |
| `zero_shot_video`   | `frames_bytes` string [B, F], `class_names` string [C]   | `scores`, `probabilities` float32 [B, C] |
| `serving_examples`  | `examples` string [B] (serialized raw tf.Example)        | `<kind>_embedding` float32 [B, d]    |
|                     | (also `serving_default`, the TFX convention)             | for kind in text, image, audio, video |

Embedding spaces (IMP learns one common space per modality pair): media embeddings live in the space
shared with text (`image`/`video` -> `vision_to_text`, `audio` -> `audio_to_text`); `embed_text` returns
the text -> vision embedding (`text_target`, the space that matches image and video embeddings), and
`embed_text_for_audio` the text -> audio one (text-to-audio retrieval). All embeddings are L2-normalized,
so a dot product is a cosine (an empty `text` has no tokens and embeds to zeros). `embed_video_audio` fuses the video and audio embeddings (normalized mean)
and falls back to the video alone where `audio_bytes` is "" (a signature cannot have optional inputs).

Zero-shot class keys are the normalized mean of the text embeddings of the class name in every prompt
template (built in the graph), in the text -> media space; `scores` are cosines and `probabilities` their
softmax at the model's learned temperature for the (media, text) pair.

Video clips are cropped or padded to `MediaConfig.video_frames` frames; empty frame strings are replaced by
the first frame, as Transform does. Undecodable media raise InvalidArgumentError naming the input.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf
from tensorflow.python.trackable import data_structures  # NoDependency has no public alias

from models import features as F
from models import preprocessing
from models.imp_model import ImpModel, encoder_modality

EMBED_KINDS = ("text", "image", "audio", "video")
SIGNATURE_NAMES = ("embed_text", "embed_text_for_audio", "embed_image", "embed_audio", "embed_video",
                   "embed_video_audio", "zero_shot", "zero_shot_audio", "zero_shot_video",
                   "serving_examples")
DEFAULT_SIGNATURE = "serving_examples"  # exported a second time as `serving_default`

# Leading bytes of the encodings tf.io.decode_image reads (checked first for a clear error message).
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def _strings(shape, name):
    return tf.TensorSpec(shape, tf.string, name=name)


def _check_prefixes(data: tf.Tensor, prefixes: Sequence[bytes], message: str,
                    offset: int = 0) -> tf.Tensor:
    """Asserts that every string of `data` [N] starts (at `offset`) with one of `prefixes`."""
    ok = tf.zeros(tf.shape(data), tf.bool)
    for prefix in prefixes:
        ok = tf.logical_or(ok, tf.strings.substr(data, offset, len(prefix)) == prefix)
    bad = tf.where(tf.logical_not(ok))[:1, 0]
    return tf.debugging.Assert(tf.reduce_all(ok), [message, "first bad index:", bad], summarize=1)


def _templates_split(templates: Sequence[str]):
    """["a photo of a {label}", ...] -> [("a photo of a ", ""), ...]."""
    out = []
    for template in templates:
        if "{label}" not in template:
            raise ValueError(f"prompt template {template!r} lacks the {{label}} placeholder")
        out.append(tuple(template.split("{label}", 1)))
    return tuple(out)


class ImpServingModule(tf.Module):
    """Serving signatures over an unsharded `ImpModel` (see the module docstring).

    Args:
      model: a built, restored `ImpModel` created without a mesh (DTensor ops must not be traced).
      media: the `MediaConfig` the model was trained with (image size, frames, audio settings).
      text_vocab_path: the Transform's `text_wordpiece_vocab` file (saved as an asset).
      labels_path: optional `labels` vocabulary file (saved as an asset, for clients and audits).
      prompt_templates: {"image"|"audio"|"video": templates with "{label}"} for the zero-shot keys.
      text_target: space of `embed_text`: "vision" (matches image/video embeddings) or "audio".
    """

    def __init__(self, model: ImpModel, media: F.MediaConfig, text_vocab_path: str,
                 labels_path: Optional[str] = None,
                 prompt_templates: Optional[Mapping[str, Sequence[str]]] = None,
                 text_target: str = "vision"):
        super().__init__(name="imp_serving")
        if getattr(model, "mesh", None) is not None:
            raise ValueError("export needs a model built without a DTensor mesh (ENGINEERING_NOTES D.4)")
        if text_target not in ("vision", "audio"):
            raise ValueError(f"text_target must be 'vision' or 'audio', got {text_target!r}")
        # The Keras model itself is not tracked (Keras' SavedModel serialization would trace its
        # `call`); its variables are, which is all the signatures capture.
        self.model = data_structures.NoDependency(model)
        self.model_variables = list(model.variables)
        self.media = media
        self.text_target = text_target
        self.dim = int(model.imp_config.heads.d_common)
        self.text_vocab = tf.saved_model.Asset(text_vocab_path)
        # Built exactly like the Transform's lookup (models.preprocessing._tokenize_lookup), from the asset
        # so that the loaded SavedModel re-initializes the table from its own assets/ folder.
        self.text_table = tf.lookup.StaticVocabularyTable(
            tf.lookup.TextFileInitializer(self.text_vocab, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
            num_oov_buckets=1)
        if labels_path is not None:
            self.labels_vocab = tf.saved_model.Asset(labels_path)
        templates = dict(prompt_templates or {})
        self._templates = {kind: _templates_split(templates.get(kind, ("{label}",)))
                           for kind in ("image", "audio", "video")}

    # -- preprocessing: raw strings -> dense media (models.preprocessing) ------------------------------

    def text_ids(self, text: tf.Tensor) -> tf.Tensor:
        """string [B] -> WordPiece ids int64 [B, text_max_length]."""
        return preprocessing.tokenize_text(text, self.text_table, self.media.text_max_length)

    def images(self, image_bytes: tf.Tensor, input_name: str = "image_bytes") -> tf.Tensor:
        """Encoded images string [N] -> float32 [N, S, S, 3] in [-1, 1]."""
        size = self.media.image_size
        check = _check_prefixes(image_bytes, _IMAGE_MAGIC,
                                f"{input_name}: not an encoded JPEG, PNG, GIF or BMP image")
        with tf.control_dependencies([check]):
            image_bytes = tf.identity(image_bytes)
        return tf.map_fn(lambda data: preprocessing.decode_image(data, size), image_bytes,
                         fn_output_signature=tf.TensorSpec(self.media.image_shape, tf.float32))

    def videos(self, frames_bytes: tf.Tensor) -> tf.Tensor:
        """JPEG frames string [B, F] -> float32 [B, video_frames, S, S, 3] in [-1, 1]."""
        frames = self.media.video_frames
        frames_bytes = frames_bytes[:, :frames]
        frames_bytes = tf.pad(frames_bytes, [[0, 0], [0, frames - tf.shape(frames_bytes)[1]]],
                              constant_values="")
        # Like Transform: missing frames repeat the first one.
        frames_bytes = tf.where(tf.strings.length(frames_bytes) > 0, frames_bytes, frames_bytes[:, :1])
        flat = self.images(tf.reshape(frames_bytes, [-1]), "frames_bytes")
        return tf.reshape(flat, [-1, frames, *self.media.image_shape])

    def spectrograms(self, audio_bytes: tf.Tensor) -> tf.Tensor:
        """WAV string [N] -> log-mel float32 [N, spectrogram_frames, num_mel_bins]."""
        rate = self.media.audio.sample_rate
        header = tf.logical_and(tf.strings.substr(audio_bytes, 0, 4) == b"RIFF",
                                tf.strings.substr(audio_bytes, 8, 4) == b"WAVE")
        check = tf.debugging.Assert(
            tf.reduce_all(header),
            ["audio_bytes: not a WAV file (RIFF/WAVE header expected); first bad index:",
             tf.where(tf.logical_not(header))[:1, 0]], summarize=1)

        def one(data):
            waveform, sample_rate = tf.audio.decode_wav(data, desired_channels=1)
            rate_check = tf.debugging.Assert(
                tf.equal(sample_rate, rate),
                [f"audio_bytes: WAV must be sampled at {rate} Hz, got", sample_rate])
            with tf.control_dependencies([rate_check]):
                return preprocessing.waveform_to_log_mel(waveform[:, 0], self.media)

        with tf.control_dependencies([check]):
            audio_bytes = tf.identity(audio_bytes)
        return tf.map_fn(one, audio_bytes,
                         fn_output_signature=tf.TensorSpec(self.media.spectrogram_shape, tf.float32))

    def dense_media(self, kind: str, data: tf.Tensor) -> tf.Tensor:
        return {"text": self.text_ids, "image": self.images, "audio": self.spectrograms,
                "video": self.videos}[kind](data)

    # -- embeddings ------------------------------------------------------------------------------------

    def embed(self, kind: str, data: tf.Tensor, target: str = "text") -> tf.Tensor:
        """Raw inputs of `kind` [B] (video [B, F]) -> L2-normalized float32 [B, d] in the kind<->target space."""
        return self.model.embed(kind, self.dense_media(kind, data), target=target)

    def embed_present(self, kind: str, data: tf.Tensor, present: tf.Tensor,
                      target: str = "text") -> tf.Tensor:
        """`embed` of the rows where `present` bool [B] holds; zero rows elsewhere.

        Absent rows never enter the encoder, so they cannot change the MoE routing of the present ones.
        """
        index = tf.where(present)[:, 0]
        batch = tf.shape(present, out_type=tf.int64)[0]

        def run():
            embeddings = self.embed(kind, tf.gather(data, index), target)
            return tf.scatter_nd(index[:, tf.newaxis], embeddings, tf.stack([batch, self.dim]))

        return tf.cond(tf.size(index) > 0, run, lambda: tf.zeros(tf.stack([batch, self.dim])))

    def class_keys(self, kind: str, class_names: tf.Tensor) -> tf.Tensor:
        """Class names string [C] -> prompt-ensemble keys float32 [C, d] in the text -> `kind` space.

        Each distinct name is embedded once, so identical names get identical keys.
        """
        check = tf.debugging.Assert(tf.size(class_names) > 0, ["class_names must not be empty"])
        with tf.control_dependencies([check]):
            names, index = tf.unique(class_names)
        templates = self._templates[kind]
        prompts = tf.concat([tf.strings.join([prefix, names, suffix]) for prefix, suffix in templates],
                            axis=0)  # [T * U], template-major
        embeddings = self.model.embed("text", self.text_ids(prompts), target=encoder_modality(kind))
        keys = tf.reduce_mean(tf.reshape(embeddings, [len(templates), -1, self.dim]), axis=0)
        return tf.gather(tf.math.l2_normalize(keys, axis=-1), index)

    def zero_shot_scores(self, kind: str, data: tf.Tensor, class_names: tf.Tensor) -> Dict[str, tf.Tensor]:
        embeddings = self.embed(kind, data, target="text")
        scores = tf.matmul(embeddings, self.class_keys(kind, class_names), transpose_b=True)
        temperature = self.model.temperature(kind, "text")
        return {"scores": scores, "probabilities": tf.nn.softmax(scores / temperature, axis=-1)}

    # -- signatures ------------------------------------------------------------------------------------

    @tf.function(input_signature=[_strings([None], "text")])
    def embed_text(self, text):
        return {"embedding": self.embed("text", text, target=self.text_target)}

    @tf.function(input_signature=[_strings([None], "text")])
    def embed_text_for_audio(self, text):
        return {"embedding": self.embed("text", text, target="audio")}

    @tf.function(input_signature=[_strings([None], "image_bytes")])
    def embed_image(self, image_bytes):
        return {"embedding": self.embed("image", image_bytes)}

    @tf.function(input_signature=[_strings([None], "audio_bytes")])
    def embed_audio(self, audio_bytes):
        return {"embedding": self.embed("audio", audio_bytes)}

    @tf.function(input_signature=[_strings([None, None], "frames_bytes")])
    def embed_video(self, frames_bytes):
        return {"embedding": self.embed("video", frames_bytes)}

    @tf.function(input_signature=[_strings([None, None], "frames_bytes"), _strings([None], "audio_bytes")])
    def embed_video_audio(self, frames_bytes, audio_bytes):
        video = self.embed("video", frames_bytes)
        audio = self.embed_present("audio", audio_bytes, tf.strings.length(audio_bytes) > 0)
        return {"embedding": tf.math.l2_normalize(video + audio, axis=-1)}

    @tf.function(input_signature=[_strings([None], "image_bytes"), _strings([None], "class_names")])
    def zero_shot(self, image_bytes, class_names):
        return self.zero_shot_scores("image", image_bytes, class_names)

    @tf.function(input_signature=[_strings([None], "audio_bytes"), _strings([None], "class_names")])
    def zero_shot_audio(self, audio_bytes, class_names):
        return self.zero_shot_scores("audio", audio_bytes, class_names)

    @tf.function(input_signature=[_strings([None, None], "frames_bytes"), _strings([None], "class_names")])
    def zero_shot_video(self, frames_bytes, class_names):
        return self.zero_shot_scores("video", frames_bytes, class_names)

    @tf.function(input_signature=[_strings([None], "examples")])
    def serving_examples(self, examples):
        """Raw tf.Examples (`models.features.RAW_*`) -> `<kind>_embedding` [B, d], zero rows where absent."""
        spec = {key: tf.io.FixedLenFeature([], tf.string, default_value="")
                for key in (F.RAW_TEXT, F.RAW_IMAGE, F.RAW_AUDIO)}
        spec[F.RAW_VIDEO_FRAMES] = tf.io.VarLenFeature(tf.string)
        parsed = tf.io.parse_example(examples, spec)
        frames = tf.sparse.to_dense(parsed[F.RAW_VIDEO_FRAMES], default_value="")
        inputs = {"text": (parsed[F.RAW_TEXT], self.text_target),
                  "image": (parsed[F.RAW_IMAGE], "text"),
                  "audio": (parsed[F.RAW_AUDIO], "text"),
                  "video": (frames, "text")}
        outputs = {}
        for kind, (data, target) in inputs.items():
            # A video is present when its first frame is (a batch without videos has no frame column).
            first = data if kind != "video" else tf.pad(data, [[0, 0], [0, 1]])[:, 0]
            outputs[f"{kind}_embedding"] = self.embed_present(
                kind, data, tf.strings.length(first) > 0, target)
        return outputs

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """{signature name: concrete function} for `tf.saved_model.save`, `serving_default` included."""
        out = {name: getattr(self, name).get_concrete_function() for name in SIGNATURE_NAMES}
        out["serving_default"] = out[DEFAULT_SIGNATURE]
        return out
