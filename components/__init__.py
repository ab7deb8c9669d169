import os as _os

# TFX/TFT and this project use the Keras 2 API (tf_keras); set it before TensorFlow is imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
