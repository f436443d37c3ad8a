#!/usr/bin/python3
"""Checks spec/schema/envelope.schema.json against the envelope vectors.

usage: check_schema.py SCHEMA.json INDEX.json

Every `ok` vector validates. Every `bad_envelope` vector fails validation,
except those the schema cannot see (v spelled 1.0 / 1e0 / 10E-1: the schema
sees the integer 1). JSON-level failures are not schema matters and skipped.
Skips (exit 0 with a note) when python3-jsonschema is not installed.
"""
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    # make deps installs python3-jsonschema: its absence is a broken setup.
    print('FAIL: python3-jsonschema is not installed (make deps installs it)')
    sys.exit(1)

SPELLING_ONLY = {'env-224-v-fraction-integral', 'env-225-v-exponent', 'env-226-v-exp-fraction'}


def main():
    schema = json.load(open(sys.argv[1], encoding='utf-8'))
    index_path = sys.argv[2]
    root = os.path.dirname(os.path.abspath(index_path))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    problems, n = [], 0
    for v in json.load(open(index_path, encoding='utf-8'))['vectors']:
        if v['expect'] == 'ok' or v.get('code') == 'bad_envelope':
            raw = open(os.path.join(root, v['file']), 'rb').read()
            inst = json.loads(raw.decode('utf-8'))
            valid = validator.is_valid(inst)
            want = v['expect'] == 'ok' or v['id'] in SPELLING_ONLY
            n += 1
            if valid != want:
                problems.append('%s: schema says %s' % (v['id'], 'valid' if valid else 'invalid'))
    for p in problems:
        print('FAIL', p)
    print('%d vectors checked against the schema, %d problems' % (n, len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
