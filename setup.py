"""Packaging for tb-plugin-insight. TensorBoard finds the plugin through the entry point below."""

import pathlib

from setuptools import find_packages, setup

ROOT = pathlib.Path(__file__).parent
version = {}
for line in (ROOT / "tb_plugin_insight" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        version["v"] = line.split("=")[1].strip().strip("\"'")

setup(
    name="tb-plugin-insight",
    version=version["v"],
    description="See inside a PyTorch network while it trains: an Insight tab for TensorBoard.",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["tb_plugin_insight", "tb_plugin_insight.*"]),
    package_data={
        "tb_plugin_insight": ["proto/*.proto", "plugin/static/*", "plugin/http_api.md"],
    },
    install_requires=[
        "torch>=2.1",
        "tensorboard>=2.14",
        # Generated code in tb_plugin_insight/proto is gencode 6.31.1; the runtime must not be older.
        "protobuf>=6.31.1",
        "numpy>=1.22",
        "werkzeug>=2.0",
        "pillow>=9.0",
        "google-crc32c>=1.5",
    ],
    entry_points={
        "tensorboard_plugins": ["insight = tb_plugin_insight.plugin.loader:InsightLoader"],
    },
    license="Apache-2.0",
    classifiers=["Programming Language :: Python :: 3"],
)
