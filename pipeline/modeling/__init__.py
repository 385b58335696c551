"""The model: building and fitting XGBoost, the registered pyfunc that serves raw rows, the promotion rule."""
