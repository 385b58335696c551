"""The user's table: reading sources (files, URLs, s3://, SQL), labels, column kinds and the schema, the feature
hook, and the transform the registered model carries."""
