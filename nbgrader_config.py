"""nbgrader configuration of the course (instructors: see docs/instructors.md).

`dbcourse grade` writes its own course folder and uses this file's settings; you can also use
nbgrader directly (formgrader in JupyterLab) with this configuration.
"""

c = get_config()  # noqa: F821

c.CourseDirectory.course_id = "databases-from-python"

# The placeholder that replaces each `### BEGIN SOLUTION ... ### END SOLUTION` region: the same
# text as dbcourse.release.CODE_STUB, so `nbgrader generate_assignment` and `dbcourse release`
# produce the same learner notebooks (tests/test_release.py checks it).
c.ClearSolutions.code_stub = {
    "python": '# YOUR ANSWER HERE (replace this comment and the line below with your answer)\n'
              'raise NotImplementedError("Exercise not answered yet")'
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading: a deleted test cell is put back, and a cell that runs too long is stopped.
c.OverwriteCells.add_missing_cells = True
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
