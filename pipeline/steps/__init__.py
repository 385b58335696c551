"""One module per command (MLproject entry point): a typed `run(...)` doing the step's work. `pipeline.contract`
names each step's upstream, config sections, artifacts and tags; `pipeline.cli` maps commands to these modules."""
