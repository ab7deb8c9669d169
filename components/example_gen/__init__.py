"""MultimodalExampleGen: media folders + JSONL manifests -> per-task splits of raw tf.Examples."""

from components.example_gen.component import IngestionReport
from components.example_gen.component import MultimodalExampleGen
from components.example_gen.component import make_input_config

__all__ = ["IngestionReport", "MultimodalExampleGen", "make_input_config"]
