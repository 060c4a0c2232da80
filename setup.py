"""Builds the course package; everything but this step is declared in pyproject.toml.

A non-editable build (`pip install .`, `python3 tasks.py wheel`) also carries the course's data and the
files the notebooks and the self-check read: it copies them into batchcourse/shipped/, laid out as in
the repository, so `batchcourse.paths` finds them where no clone is. The repository keeps one copy of
each (data/ stays where it is); an editable install reads them from the clone.
"""

import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = (
    "data/README.md", "data/MNIST/SHA256SUMS", "data/MNIST/raw/*", "data/sweeps/*.json", "data/fonts/*",
    "translations/*/*.json",
    "requirements.txt", "autograde/nbgrader_config.py",
)


class BuildWithCourseFiles(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "batchcourse" / "shipped"
        for pattern in SHIPPED:
            for source in sorted(ROOT.glob(pattern)):
                destination = target / source.relative_to(ROOT)
                self.mkpath(str(destination.parent))
                self.copy_file(str(source), str(destination))


# Each build works in a new folder, removed when it ends: nothing stale from an earlier or interrupted build
# (such as a file deleted since) gets into the package, and two builds at once do not meet.
BUILD_FOLDER = tempfile.TemporaryDirectory(prefix="batchcourse-build-")

setup(cmdclass={"build_py": BuildWithCourseFiles}, options={"build": {"build_base": BUILD_FOLDER.name}})
