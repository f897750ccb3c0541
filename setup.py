"""simsiam-tfx: a TFX pipeline that learns image embeddings without labels (SimSiam)."""

from setuptools import find_packages, setup

setup(
    name="simsiam-tfx",
    version="0.1.0",
    description="Self-supervised image embeddings (SimSiam) as a production TFX pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9,<3.11",
    packages=find_packages(
        include=["models*", "serving*", "components*", "pipeline*", "kubeflow*"], exclude=["kubeflow.entrypoint_path*"]
    ),
    # The report page's Jinja2 templates are read from the installed package (components/report/html.py).
    package_data={"kubeflow": ["Dockerfile"], "components.report": ["*.j2"]},
    # Exact versions live in requirements.lock (installed with --no-deps by `make setup`);
    # these ranges only document what the code needs.
    install_requires=[
        "tfx==1.16.0",
        "keras>=3.5,<4",
        "faiss-cpu>=1.15,<2",
        "dill",
        "pillow",
        "matplotlib",
        "psutil",
    ],
    extras_require={
        "kubeflow": ["kfp==2.7.0", "kfp-pipeline-spec==0.3.0"],
        "jax": ["jax[cpu]==0.4.30"],
        "serving": ["tensorflow-serving-api==2.16.1"],
        "tfds": ["tensorflow-datasets"],
        "dev": ["pytest", "ruff"],
    },
    entry_points={"console_scripts": ["simsiam-tfx=pipeline.cli:main"]},
)
