"""The documents say what the code does: README, MLproject and CLI describe the same parameters; docs/design.md
matches pipeline/contract.py, the README's code map matches pipeline/, and every document cited exists."""

import re

import yaml

from pipeline.cli import build_parser, command_names, command_options
from tests.helpers import REPO_ROOT

MLPROJECT = yaml.safe_load((REPO_ROOT / "MLproject").read_text())
README = (REPO_ROOT / "README.md").read_text()


def test_every_entry_point_passes_each_parameter_to_the_cli():
    parser = build_parser()
    for name, entry in MLPROJECT["entry_points"].items():
        assert entry["command"].startswith(f"python -m pipeline {name} "), name
        options = command_options(parser, name)  # the entry point's own sub-command
        for parameter in entry["parameters"]:
            assert f"--{parameter} {{{parameter}}}" in entry["command"], (name, parameter)
            assert f"--{parameter}" in options, (name, parameter)
            assert entry["parameters"][parameter]["default"] == "", "defaults live in configs/pipeline.yaml only"


def test_the_readme_documents_every_parameter_with_its_entry_points():
    table = {
        row[0].strip("` "): row[-1]
        for row in (line.strip("|").split("|") for line in README.splitlines() if line.startswith("| `"))
    }
    for name, entry in MLPROJECT["entry_points"].items():
        for parameter in entry["parameters"]:
            assert parameter in table, f"README lacks -P {parameter}"
            assert name in table[parameter] or "all" in table[parameter], (parameter, name)


def test_readme_step_commands_name_real_entry_points():
    for entry_point in re.findall(r"mlflow run \. -e (\w+)", README):
        assert entry_point in MLPROJECT["entry_points"]


# docs/design.md and the README's code map against the code: cited documents exist, every tag and artifact of
# pipeline/contract.py is in the design and no other, and the map lists exactly the modules of pipeline/.
DESIGN = (REPO_ROOT / "docs" / "design.md").read_text()
CODE_FILES = [REPO_ROOT / "Makefile", REPO_ROOT / "MLproject"] + [
    path
    for folder in ("pipeline", "tests", "benchmarks", "deploy", "examples")
    for path in sorted((REPO_ROOT / folder).rglob("*"))
    if path.is_file() and path.suffix in {".py", ".yml", ".yaml", ".toml", ".txt", ".md"}
]
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# `docs/...` paths and `*.md` names, with an optional #anchor.
CITED = re.compile(r"(?<![\w/.-])((?:\.\./)?(?:docs/[\w./-]*\w|(?:[\w-]+/)*[\w-]+\.md))(#[\w-]+)?")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _code_spans(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


def test_every_document_cited_in_the_code_and_docs_exists():
    from pipeline.contract import LINEAGE_CARD_ARTIFACT, MODEL_CARD_ARTIFACT

    for source in CODE_FILES + DOC_FILES:
        where = source.relative_to(REPO_ROOT)
        for cited, anchor in CITED.findall(source.read_text()):
            if cited in (LINEAGE_CARD_ARTIFACT, MODEL_CARD_ARTIFACT):  # run artifacts, not documents
                continue
            bases = (source.parent, REPO_ROOT, REPO_ROOT / "docs")  # relative to the file, or the repo's folders
            found = [base / cited for base in bases if (base / cited).exists()]
            assert found, f"{where} cites {cited}, which the repository does not have"
            if anchor and found[0].suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", found[0].read_text(), re.M)
                assert anchor[1:] in map(_anchor, headings), f"{where} cites {cited}{anchor}: no such heading"


def test_design_names_every_tag_and_artifact_of_the_contract():
    from pipeline import contract

    constants = {
        value
        for name, value in vars(contract).items()
        if isinstance(value, str) and name.endswith(("_TAG", "_TAG_PREFIX", "_ARTIFACT", "_DIR"))
    }
    declared = {
        value for step in contract.STEPS.values() for value in step.run_tags + step.version_tags + step.artifacts
    }
    spans = _code_spans(DESIGN)
    for value in sorted(constants | declared):
        prefix = value if value.endswith(".") else value + "/"  # a tag prefix, or a folder of artifacts
        assert any(span == value or span.startswith(prefix) for span in spans), f"docs/design.md lacks `{value}`"


def test_the_design_step_table_matches_the_contract():
    from pipeline.contract import STEPS

    rows = {cells[0].strip("` "): cells for cells in (line.strip("|").split("|") for line in DESIGN.splitlines())}
    for name, step in STEPS.items():
        _, reads, records, sections, artifacts, run_tags, version_tags = rows[name]
        assert (reads.split()[0] if reads.strip()[0] != "—" else None) == step.reads, name
        assert {word.strip() for word in records.split(",") if word.strip() != "—"} == set(step.records), name
        assert _code_spans(sections) == set(step.config_sections), name
        assert {span.split("/<")[0] for span in _code_spans(artifacts)} == set(step.artifacts), name
        assert _code_spans(run_tags) == set(step.run_tags), name
        assert _code_spans(version_tags) == set(step.version_tags), name


def _is_module(dotted: str) -> bool:
    """`pipeline.x.y` names a module or package of pipeline/ (or something inside one)."""
    parts = dotted.split(".")[1:]
    return any(
        (REPO_ROOT / "pipeline").joinpath(*parts[:depth]).with_suffix(".py").is_file()
        or (REPO_ROOT / "pipeline").joinpath(*parts[:depth], "__init__.py").is_file()
        for depth in range(1, len(parts) + 1)
    )


def test_every_pipeline_tag_in_the_design_is_in_the_contract():
    from pipeline import contract

    known = {value for name, value in vars(contract).items() if isinstance(value, str) and name.endswith("_TAG")}
    known |= {contract.upstream_tag(step) for step in [*contract.STEPS, "<step>"]}
    known |= {contract.version_run_tag(step) for step in [*contract.STEPS, "<step>"]}
    known |= {contract.split_uri_tag(split) for split in ("train", "test")}
    written = set(re.findall(r"(?<![\w/.-])pipeline(?:\.[\w<>]+)+", DESIGN))
    tags = {name for name in written if not _is_module(name) and not name.endswith((".py", ".yaml"))}
    assert tags <= known, f"docs/design.md names tags pipeline/contract.py lacks: {sorted(tags - known)}"


def _readme_code_map() -> set[str]:
    """The modules listed under `pipeline/` in the README's Layout section, relative to pipeline/."""
    layout = README.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    listed, inside = set(), False
    for line in layout.splitlines():
        if not line.startswith(" "):
            inside = line.startswith("pipeline/")
        elif inside and line.strip():
            listed.add(line.split()[0])
    return listed


def test_the_readme_code_map_lists_exactly_the_modules_of_the_package():
    on_disk = {path.relative_to(REPO_ROOT / "pipeline").as_posix() for path in (REPO_ROOT / "pipeline").rglob("*.py")}
    listed = _readme_code_map()
    assert on_disk - listed == set(), "modules missing from the README's code map (## Layout)"
    assert listed - on_disk == set(), "the README's code map names modules that do not exist"


def test_every_documented_command_line_parses():
    """`python -m pipeline <command> ...` as the documents write it is accepted by that command's options."""
    import shlex

    parser = build_parser()
    documents = [README, *(path.read_text() for path in (REPO_ROOT / "docs").glob("*.md"))]
    lines = [
        line.split("#")[0].split("`")[0]
        for text in documents
        for line in re.findall(r"python -m pipeline [a-z][^\n`|)]*", text)
    ]
    known = set(command_names(parser))
    commands = [shlex.split(line)[3:] for line in lines]
    commands = [argv for argv in commands if argv[0] in known and "--help" not in argv]
    assert len(commands) >= 5
    for argv in commands:
        parser.parse_args(argv)  # exits (SystemExit) on an option the command does not take


def test_a_command_refuses_the_options_of_another(capsys):
    import pytest

    parser = build_parser()
    assert parser.parse_args(["rollback", "--reason", "bad"]).reason == "bad"
    for argv in (["predict", "--n-trials", "3"], ["train", "--reason", "x"], ["lineage", "--at", "2026-01-01"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_design_lists_each_commands_options_and_outputs():
    from pipeline.contract import STEPS

    parser = build_parser()
    common = {"-h", "--help", "--config", "--set", "--engine", "--result-file", "--json", "--chain-id"}
    lines = {line.split("`")[1]: line for line in re.split(r"\n(?=- `)", DESIGN) if " command: " in line}
    for name in [*STEPS, "main"]:
        written = {span for span in _code_spans(lines[name].split(";")[0]) if span.startswith("--")}
        if name != "main":
            assert written == command_options(parser, name) - common, name
            outputs = (
                _code_spans(lines[name].split("outputs", 1)[1].split("(")[0]) if "outputs" in lines[name] else set()
            )
            assert outputs == {output.name for output in STEPS[name].outputs}, name
