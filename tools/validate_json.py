#!/usr/bin/env python3
"""Validates JSON documents (JSON lines on stdin) against a JSON Schema: a schema file, or an OCSF event class.

    validate_json.py --schema tests/fixtures/schemas/chat-custom-notification.schema.json < payloads.jsonl
    validate_json.py --ocsf 1.6.0 --class compliance_finding --profile cloud < findings.jsonl

OCSF schemas come from the `ocsf-json-schema` package, which ships the official OCSF schema exports (1.0.0 to
1.8.0) and turns a class into a strict JSON Schema (draft 2020-12: required attributes, enums, no unknown
attributes). Validation is done by `jsonschema`. Nothing is fetched from the network.

Prints one line per invalid document (line number, path, problem) and a closing `N passed, M failed` line;
exits 1 when any document is invalid or none was given.
"""

import argparse
import json
import sys

import jsonschema


def load_schema(args):
    if args.schema:
        with open(args.schema, encoding="utf-8") as f:
            return json.load(f)
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=args.ocsf))
    return ocsf.get_class_schema(class_name=args.class_name, profiles=args.profile)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--schema", help="a JSON Schema file")
    source.add_argument("--ocsf", metavar="VERSION", help="an OCSF version packaged by ocsf-json-schema")
    parser.add_argument("--class", dest="class_name", help="the OCSF class name, e.g. compliance_finding")
    parser.add_argument("--profile", action="append", default=[], help="an OCSF profile (repeatable)")
    args = parser.parse_args()
    if args.ocsf and not args.class_name:
        parser.error("--ocsf needs --class")

    schema = load_schema(args)
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    passed = failed = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"line {number}: not JSON: {e}")
            failed += 1
            continue
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            failed += 1
            for e in errors:
                path = "/".join(str(p) for p in e.absolute_path) or "(document)"
                print(f"line {number}: {path}: {e.message}")
        else:
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
