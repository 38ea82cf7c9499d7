"""API endpoints of the cohorts app: the sources a user may count on, cohort definitions (with versions, ATLAS
import and export, sharing) and runs with their results,
privacy applied by ``cohorts.runs.selectors.run_request_result``.

The sources endpoint lives here and not in ``warehouse``: which sources a person may query is a question of
projects and permissions, and ``warehouse`` knows nothing of either (ARCHITECTURE.md).
"""
