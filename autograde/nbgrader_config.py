"""nbgrader configuration for the course. tasks.py puts this folder on JUPYTER_CONFIG_PATH.

The course root is the repository: solutions/ is nbgrader's source folder, notebooks/ its
release folder; submissions, autograded copies, feedback and the gradebook live here in
autograde/. Set NBGRADER_DB_URL to any SQLAlchemy URL (e.g. postgresql://user@host/course)
to keep the gradebook elsewhere.
"""

import importlib.util
import os
from pathlib import Path

import zmq
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds,
                                    GetGrades, IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec,
                                    SaveAutoGrades)

from batchcourse.grading.feedback import HideHiddenTests, StudentFeedback
from batchcourse.grading.output_limit import LimitedSandboxedExecute, OutputByteLimit
from batchcourse.grading.repair import RepairSubmission
from batchcourse.grading.sandbox import METADATA_KEY, SandboxedExecute
from batchcourse.grading.tamper import TamperCheck

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "batchcourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "autograde/submitted"
c.CourseDirectory.autograded_directory = "autograde/autograded"
c.CourseDirectory.feedback_directory = "autograde/feedback"
c.CourseDirectory.solution_directory = "autograde/solution"
c.CourseDirectory.db_url = os.environ.get("NBGRADER_DB_URL", f"sqlite:///{HERE / 'gradebook.db'}")
# nbgrader's exchange (release and collect through a shared folder): NBGRADER_EXCHANGE on a shared server, outside
# the course folder (README: On JupyterHub; jupyterhub/ holds the hub's side), else autograde/exchange on one laptop.
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE") or str(HERE / "exchange")
# Collect (Formgrader's button and `nbgrader collect`) takes only the course's students, each from their own account.
# Not on Kubernetes, where ngshare_exchange is the exchange (jupyterhub/kubernetes/nbgrader_config.py).
if importlib.util.find_spec("ngshare_exchange") is None:
    c.ExchangeFactory.collect = "batchcourse.grading.hub.RosterCollect"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Student notebooks carry no outputs, and no extra files are released with them.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.GenerateAssignment.create_assignment = True

# Grading: a damaged submission is repaired first (batchcourse/grading/repair.py: deleted test cells put back,
# duplicated or made-up cells graded as plain code, the grading metadata of every known cell as released). Each submission then runs in a sandbox (batchcourse/grading/sandbox.py) with no network, no access to
# solutions, tests or the gradebook, and limits on time, memory and processes; then TamperCheck
# withholds the automatic score of code that changes what the tests rely on (batchcourse/grading/tamper.py).
# Where the sandbox cannot be made (not root, no namespaces) grading stops, unless
# BATCHCOURSE_UNSAFE_NO_SANDBOX=1 says to run without isolation.
c.Autograde.sanitize_preprocessors = [
    RepairSubmission, ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata,
]
# Output is kept up to a byte limit per cell and per notebook as it arrives, then checked again
# (batchcourse/grading/output_limit.py): what is left out is said in the cell, and scoring is unchanged.
c.Autograde.autograde_preprocessors = [
    LimitedSandboxedExecute, OutputByteLimit, TamperCheck, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
    SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
]
c.SandboxedExecute.allow_unsafe = os.environ.get("BATCHCOURSE_UNSAFE_NO_SANDBOX") == "1"
c.SandboxedExecute.wall_seconds = int(os.environ.get("BATCHCOURSE_WALL_SECONDS", 900))
c.SandboxedExecute.memory_mb = 4096
c.ClearMetadataPreprocessor.preserve_nb_metadata_mask = {("language_info", "name"), (METADATA_KEY,)}

# A cell gets a generous time limit; a warning printed to stderr by a passing test is harmless,
# so it is removed before the cell is scored (nbgrader scores any stderr output as 0).
c.Execute.timeout = int(os.environ.get("BATCHCOURSE_CELL_SECONDS", 120))
c.Execute.interrupt_on_timeout = True
# After a cell's reply, its output may still be on its way (a cell that printed 240 MB needs longer than
# nbclient's 4 s to deliver it, and a timeout there stopped grading of the whole notebook).
c.Execute.iopub_timeout = 60
c.IgnorePattern.enabled = True
WARNING_PATTERN = r"^(?:\S.*:\d+: )?\w*Warning: "
c.IgnorePattern.pattern = WARNING_PATTERN
c.LimitedSandboxedExecute.ignored_stderr = c.OutputByteLimit.ignored_stderr = WARNING_PATTERN
# The kernels that Validate and the self-check start are reached over encrypted sockets (CurveZMQ), so they
# print no warning about plain-text TCP, which a learner could do nothing about.
if zmq.has("curve"):
    c.KernelManager.transport_encryption = "auto"

# Feedback, written by `tasks.py feedback` after hand grading: hidden tests are left out, and each error is
# one line (ename: message) without a traceback or a path of the grading machine (batchcourse/grading/feedback.py).
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor, StudentFeedback]

# LMS downloads: nbgrader's zip_collect finds the student id in each file name, e.g.
# "jdoe_1234_5678_00_orientation.ipynb" (Canvas: 1234 is the Canvas user id, 5678 the submission id;
# "jdoe_LATE_1234_5678_..." when late) or "jdoe_00_orientation.ipynb". The groups `late` and `lms_user_id`
# go into the Canvas export (batchcourse/grading/lms.py). A notebook of another assignment is skipped (strict).
c.ZipCollectApp.downloaded_directory = "autograde/downloaded"
c.ZipCollectApp.archive_directory = "archive"
c.ZipCollectApp.extracted_directory = "extracted"
c.ZipCollectApp.strict = True
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[A-Za-z0-9.\-]+)_(?P<late>LATE_)?(?:(?P<lms_user_id>\d+)_(?:\d+_)*)?"
    r"(?P<file_id>\d\d_\w+?)(?:-\d+)?\.ipynb$"
)
