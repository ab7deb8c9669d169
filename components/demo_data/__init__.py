"""The procedural "digits world" demo dataset (`imp-tfx demo-data`).

Handwritten digit images, moving-digit videos, spoken captions and videos with a spoken audio track,
written in the project's bring-your-own-data format (media files plus one JSONL manifest per task);
see `generator.generate_demo_dataset`.
"""

from components.demo_data.captions import (DIGIT_NAMES, DIRECTIONS, class_prompt, image_caption,
                                           motion_caption)
from components.demo_data.generator import generate_demo_dataset
from components.demo_data.manifest import TASK_SPECS, TASKS, read_manifest

__all__ = ["DIGIT_NAMES", "DIRECTIONS", "TASKS", "TASK_SPECS", "class_prompt", "generate_demo_dataset",
           "image_caption", "motion_caption", "read_manifest"]
