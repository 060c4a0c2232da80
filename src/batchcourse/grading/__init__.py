"""The course's grading: nbgrader driven for this course (driver.py), notebook cells and submissions
(cells.py), throwaway courses for the tests (scratch.py), and the grading machinery in the other modules
(sandbox, test process, wire, tamper report, parallel grading). Nothing here is imported by the notebooks.
"""

from .cells import (NOTEBOOK_VERSION, edited, grade_id, is_solution_cell, is_test_cell, make_submission, read,
                    solution_code, strip_markers)
from .driver import (autograde, CANARY, CellScore, check_grader, course_assignments, default_db_url,
                    ensure_exchange, export_grades, generate_feedback, grading_mark, GradingStopped,
                    interrupted, nbgrader_arguments, nbgrader_cause, nbgrader_config, nbgrader_environment,
                    notebook_problem, record_in_gradebook, release, run_nbgrader, scores, set_aside_unreadable,
                    sqlite_url, ungraded, waiting_for_hand_grading, zip_collect)
from .scratch import ScratchCourse, place_submission, scratch_course
