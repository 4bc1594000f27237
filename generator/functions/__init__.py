"""Lambda handlers that the generator inlines into the templates (standard library and boto3 only)."""
