"""Floor 2: running the project as a team: the CI runner and its report, the results table, the DAG's code deps, test datasets."""
