"""Scheduling for `pytest -n N` (tasks.py test runs two workers with --dist loadgroup).

A module- or session-scoped fixture is built once per worker that runs a test using it: with two workers
sharing out a module's tests, a fixture that grades a whole batch would grade it twice. Every test that uses
such a fixture is put in one xdist group, so one worker builds it once. The slow tests (those that execute or
grade notebooks) are scheduled first, the longest groups first of all, so that the quick ones fill in the gaps at
the end.
"""

import os

import pytest

from batchcourse.paths import assignment_ids

try:  # pytest 9.2 builds node ids from `_id`; pytest-xdist 3.8 still writes the group into `_nodeid`
    from _pytest.nodeid import NodeId
except ImportError:
    NodeId = None


PER_WORKER = {"grading_servers"}  # session fixtures each worker is meant to build for itself


def shared_fixture(item) -> str | None:
    """The first of the course's own fixtures of a wider scope than one test that `item` uses, if any."""
    info = getattr(item, "_fixtureinfo", None)
    for name in sorted(set(info.name2fixturedefs if info else ()) - PER_WORKER):
        definition = info.name2fixturedefs[name][-1]
        if definition.baseid and definition.scope in ("module", "package", "session"):  # pytest's own have no baseid
            params = getattr(getattr(item, "callspec", None), "params", {})
            instance = "-".join(str(params[a]) for a in (name, *definition.argnames) if a in params)  # one per parameter
            # no brackets: xdist reads "...]" after the "@" as a test's parameters, not a group
            return f"{definition.baseid}::{name}" + (f"({instance})" if instance else "")
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    grouping = getattr(config.option, "loadgroup", False)  # set in each xdist worker under --dist loadgroup
    for item in items:
        group = shared_fixture(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        if grouping and NodeId is not None and hasattr(item, "_id"):
            names = sorted(str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                           for m in item.iter_markers("xdist_group"))
            if names:
                item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")
    items.sort(key=lambda item: (item.get_closest_marker("notebooks") is None, longest_first(item.nodeid)))


# The groups that take longest, longest first (the slowest tests the test command prints, as measured in CI):
# started first, so that no worker is left with a long one while the other has finished. tasks.py test turns off
# xdist's own order (by the number of tests in a group).
LONGEST = ("graded_batch(04_", "graded_batch(00_", "test_jupyterhub_real.py", "test_jupyterhub_ngshare.py",
           "graded_batch(06_", "graded_01", "graded_batch(03_", "graded_batch(05_", "without_root", "graded_04",
           "test_jupyterhub.py",
           "graded_batch(01_", "graded_batch(02_", "graded_batch(07_", "test_grading_day.py")


def longest_first(nodeid: str) -> int:
    return next((rank for rank, part in enumerate(LONGEST) if part in nodeid), len(LONGEST))


# -- Grading servers shared by a test worker's batches -------------------------------------------------------

@pytest.fixture(scope="session")
def grading_servers():
    """The variables that point nbgrader at one grader server, kernel source and source of test processes, started
    once per test worker (parallel.grading_servers): a batch graded with them set does not start its own. They are
    set only while such a batch is graded, never for a test that kills or checks a grading command's processes."""
    from batchcourse.grading import grader_source, parallel, sandbox, trusted_execute

    names = (grader_source.SHARED_VARIABLE, sandbox.KERNEL_SOURCE_VARIABLE, trusted_execute.SHARED_VARIABLE)
    with parallel.grading_servers(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))):
        shared = {name: os.environ.pop(name) for name in names if name in os.environ}
        yield shared


@pytest.fixture
def with_grading_servers(grading_servers, monkeypatch):
    """A test whose batches use the worker's grading servers."""
    for name, value in grading_servers.items():
        monkeypatch.setenv(name, value)


# -- One graded batch per assignment -------------------------------------------------------------------------
# The gate (test_notebooks) and the tampering test (test_tampering) grade the same course: the gate's cases and
# the attacks in one nbgrader run, so that each assignment is released, started and graded once.

@pytest.fixture(scope="session", params=assignment_ids())
def graded_batch(request, tmp_path_factory, grading_servers):
    """The course of an assignment (the parameter) with the gate's submissions and the tampering batch graded (test_tampering
    names the attacks' submissions so that none shares a name with a gate's, except the blank notebook)."""
    from batchcourse import grading
    from test_notebooks import Batch, batch_env, submissions_for
    from test_tampering import loopback_listener, tampering_batch

    assignment = request.param
    with pytest.MonkeyPatch.context() as patch, loopback_listener() as port:
        for key, value in {**batch_env(assignment), **grading_servers}.items():
            patch.setenv(key, value)
        course = grading.ScratchCourse.create(assignment, tmp_path_factory.mktemp(assignment))
        cases, expectations = submissions_for(assignment, course.student_nb, course.solution_nb)
        attacks = tampering_batch(assignment, course.student_nb, course.solution_nb, port, honest="solution")
        course.submit({**cases, **{student: notebook for student, (notebook, _, _) in attacks.items()
                                   if student not in cases}})
        run = course.autograde()
    return Batch(course, run, course.scores(), cases, expectations, attacks)
