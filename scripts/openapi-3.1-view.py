#!/usr/bin/env python3
"""Prints openapi.yaml (OpenAPI 3.2) as OpenAPI 3.1, for tools that read 3.1 only.

usage: scripts/openapi-3.1-view.py [openapi.yaml] > openapi-3.1.yaml

openapi-python-client (0.29) refuses any version but 3.1. This view is mechanical, never kept
by hand: `openapi` becomes 3.1.0, and every media type's `itemSchema` (3.2: the schema of one
line or event of a stream) is dropped, since 3.1 has no way to say it; the line schemas
(`StreamLine` and its members, `StreamEvent`) stay in components, where generators make models
of them. Nothing else changes. Needs PyYAML.
"""
import sys

import yaml


def without_item_schemas(node):
    if isinstance(node, dict):
        return {key: without_item_schemas(value) for key, value in node.items() if key != "itemSchema"}
    if isinstance(node, list):
        return [without_item_schemas(value) for value in node]
    return node


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "openapi.yaml"
    document = yaml.safe_load(open(path))
    if not str(document.get("openapi", "")).startswith("3.2"):
        sys.exit(f"{path} is OpenAPI {document.get('openapi')}, not 3.2")
    document = without_item_schemas(document)  # no schema has a property named itemSchema
    document["openapi"] = "3.1.0"
    yaml.safe_dump(document, sys.stdout, sort_keys=False, allow_unicode=True, width=1000)


if __name__ == "__main__":
    main()
