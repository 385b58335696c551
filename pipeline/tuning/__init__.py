"""The Optuna machinery behind `tune`: the study and its storage, the objective, and the nested trial runs."""
