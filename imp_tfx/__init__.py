"""imp-tfx: IMP (Integrated Multimodal Perception) on TensorFlow, TFX and TF Serving."""

import os as _os

# TFX/TFT expect Keras 2; set it before anything imports TensorFlow's Keras.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
