"""Property tests: whatever the override or the incoming rows, the config loader and the schema check either
accept them with the right types or refuse them with one line that names the key or the column."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import DataConfig, load_config
from pipeline.data.schema import build_schema, conform
from pipeline.errors import ConfigError, DataError
from tests.helpers import DEFAULT_CONFIG

KEYS = [
    "split.test_size",
    "split.seed",
    "tune.n_trials",
    "tune.n_jobs",
    "tune.timeout_s",
    "tune.metric",
    "tune.pruner.type",
    "data.task",
    "evaluate.min_relative_improvement",
    "features.derived",
    "cache.claim_wait_s",
]
VALUES = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.floats(-2, 2, allow_nan=False).map(repr),
    st.sampled_from(
        [
            "",
            "true",
            "no",
            "auto",
            "binary",
            "regression",
            "logloss",
            "rmse",
            "median",
            "hyperband",
            "null",
            "[1, 2]",
            "{a: 1}",
            "many",
            "1e3",
            "-0.0",
        ]
    ),
    st.text(max_size=12),
)
quick = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@quick
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_an_override_is_accepted_or_refused_naming_its_key(key, value):
    try:
        config = load_config(DEFAULT_CONFIG, {key: value})
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and f"`{key}`" in message or "is not a section" in message, message
        return
    section, *rest = key.split(".")
    node = getattr(config, section)
    for part in rest:
        node = getattr(node, part)
    assert node is None or isinstance(node, (bool, int, float, str))  # validated and typed


@pytest.fixture(scope="module")
def schema():
    frame = pd.DataFrame(
        {
            "size": [1.0, 2.5, np.nan, 4.0],
            "color": ["red", "blue", None, "red"],
            "count": [1, 2, 3, 4],
            "y": [0, 1, 0, 1],
        }
    )
    return build_schema(
        frame, frame, DataConfig.whole_table(source="x.csv", target="y"), ("binary", [0, 1], 1), False, "data"
    )[0]


CELLS = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=False),
    st.sampled_from(["red", "blue", "green", "", " 3.5", "NaN", "x"]),
    st.booleans(),
)


@quick
@given(
    rows=st.lists(st.fixed_dictionaries({"size": CELLS, "color": CELLS, "count": CELLS}), min_size=1, max_size=8),
    drop=st.sets(st.sampled_from(["size", "color", "count"]), max_size=2),
    extra=st.booleans(),
)
def test_rows_are_conformed_or_refused_naming_the_column(schema, rows, drop, extra):
    frame = pd.DataFrame(rows).drop(columns=sorted(drop))
    if extra:
        frame["unrelated"] = 1
    try:
        conformed = conform(frame, schema, "rows")
    except DataError as error:
        message = str(error)
        assert "\n" not in message
        assert any(f"'{name}'" in message or name in message.split("needs: ")[-1] for name in schema.features)
        assert drop or "must be numeric" in message
        return
    assert not drop and list(conformed.columns) == schema.features and len(conformed) == len(frame)
    assert conformed["size"].dtype == "float64" and conformed["count"].dtype == "float64"
    assert set(conformed["color"].dropna()) <= {"red", "blue"}  # anything else counts as missing
