"""imp-tfx: IMP (Integrated Multimodal Perception) on TensorFlow, TFX and TF Serving.

Install into the project venv with the pinned stack (see README):
    pip install -c requirements/constraints.txt -e .
"""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


def _requirements(name):
    lines = (HERE / "requirements" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="imp-tfx",
    version="0.1.0",
    description="IMP multimodal encoder (AGD + sparse MoE) as a TFX pipeline with TF Serving export",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["imp_tfx*", "models*", "components*", "pipeline*", "serving*"]),
    package_data={"": ["*.yaml", "*.txt", "*.json"]},
    install_requires=_requirements("requirements.txt"),
    extras_require={"test": _requirements("test.txt")},
    entry_points={"console_scripts": ["imp-tfx=imp_tfx.cli:main"]},
)
