"""Text prompts that turn class names into zero-shot class keys (one source for training-time
evaluation, the exported `zero_shot*` signatures and the serving client).

The first template of each kind is the one used without prompt ensembling; it is kept close to how
captions are usually phrased ("a seven moving left", "a handwritten seven"), because the WordPiece
vocabulary is learned from the captions and unseen words become [UNK].
"""

from typing import Dict, List, Sequence

LABEL = "{label}"

PROMPT_TEMPLATES: Dict[str, Sequence[str]] = {
    "image": ("a {label}", "{label}", "a photo of a {label}", "an image of the {label}"),
    "video": ("a {label}", "{label}", "a video of a {label}", "a clip of the {label}"),
    "audio": ("a {label}", "{label}", "the sound of a {label}", "a recording of the {label}"),
}


def prompts(kind: str, label: str, ensemble: bool = True) -> List[str]:
    """Prompts for one class name: all templates of `kind` (image/video/audio) or only the first."""
    templates = PROMPT_TEMPLATES[kind] if ensemble else PROMPT_TEMPLATES[kind][:1]
    return [template.replace(LABEL, label) for template in templates]
