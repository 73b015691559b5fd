"""Packaging for pggan. Torch is pinned no higher than 2.14.1, the newest release these machines carry."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / "pggan" / "__init__.py").read_text(), version)

setup(
    name="pggan",
    version=version["__version__"],
    description="Progressive Growing of GANs (Karras et al., ICLR 2018): megapixel face generators in PyTorch",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["pggan", "pggan.*"]),
    # the explore page's files, served from the installed package
    package_data={"pggan.pictures.explore": ["index.html", "app.js", "style.css"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.2,<=2.14.1",
        "torchvision",
        "pillow>=9.1",
        "numpy",
        "scipy",
        "click>=8.0",
        "lmdb>=1.4",
        "tqdm",
        "av>=11",
        "tensorboard",
        "torch-fidelity>=0.4,<0.5",  # the Inception-v3 network of pggan-fid (weights are the user's file)
    ],
    extras_require={
        # selenium drives Debian's chromium + chromium-driver in the explore page's browser test
        "test": ["pytest>=7", "ruff", "pytorch-fid>=0.3", "selenium>=4.10"],
        "fast": ["pyspng"],
    },
    entry_points={
        "console_scripts": [
            "pggan-prepare=pggan.cli:prepare_command",
            "pggan-train=pggan.cli:train_command",
            "pggan-sample=pggan.cli:sample_command",
            "pggan-swd=pggan.cli:swd_command",
            "pggan-import=pggan.cli:import_command",
            "pggan-fid=pggan.cli:fid_command",
            "pggan-explore=pggan.cli:explore_command",
            "pggan-msssim=pggan.cli:msssim_command",
            "pggan-eval=pggan.cli:eval_command",
        ]
    },
)
