"""The dask engine (`engine: dask`): the steps' data and XGBoost work on a Dask cluster. Needs the `dask` extra."""
