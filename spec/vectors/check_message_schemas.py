#!/usr/bin/python3
"""Checks spec/schema/messages/*.schema.json against the message vectors.

usage: check_message_schemas.py SCHEMA_DIR INDEX.json

For every vector whose input is JSON with a `type` that has a schema (of the
vector's direction): `ok` and `not_found` vectors validate (a ticket id that
names no ticket is well-formed data, MSG-031/042); `bad_message`,
`unsupported_version` and `bad_envelope` vectors do not. Vectors whose fault
JSON Schema cannot see are listed in SCHEMA_BLIND. Every schema is itself a
valid 2020-12 schema. Exits 77 (CTest: skipped) without python3-jsonschema.
"""
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    print('SKIP: python3-jsonschema is not installed')
    sys.exit(77)

CLIENT = {'enqueue', 'cancel', 'watch', 'ping'}
SERVER = {'enqueued', 'cancelled', 'watching', 'pong', 'error', 'match.assigned',
          'ticket.expired', 'ticket.cancelled'}
SCHEMA_BLIND = {
    'enq-015-player-utf8-130-bytes': 'lengths in bytes: maxLength counts characters',
    'srv-ma-017-assigned-at-invalid-date': 'calendar validity is not a pattern',
}


def main():
    sdir, index_path = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.abspath(index_path))
    validators = {}
    for name in sorted(os.listdir(sdir)):
        if name.endswith('.schema.json'):
            schema = json.load(open(os.path.join(sdir, name), encoding='utf-8'))
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validators[name[:-len('.schema.json')]] = cls(schema)
    missing = (CLIENT | SERVER | {'ticket'}) - set(validators)
    problems = ['no schema for %s' % m for m in sorted(missing)]
    n = 0
    for v in json.load(open(index_path, encoding='utf-8'))['vectors']:
        if v['id'] in SCHEMA_BLIND:
            continue
        try:
            inst = json.loads(open(os.path.join(root, v['file']), 'rb').read().decode('utf-8'))
        except ValueError:
            continue
        t = inst.get('type') if isinstance(inst, dict) else None
        if t not in (CLIENT if v['direction'] == 'client' else SERVER):
            continue
        if v['expect'] == 'ok' or v.get('code') == 'not_found':
            want = True
        elif v.get('code') in ('bad_message', 'unsupported_version', 'bad_envelope'):
            want = False
        else:
            continue
        n += 1
        valid = validators[t].is_valid(inst)
        if valid != want:
            problems.append('%s: schema %s says %s' % (v['id'], t, 'valid' if valid else 'invalid'))
    for p in problems:
        print('FAIL', p)
    print('%d vectors checked against %d schemas, %d problems' % (n, len(validators), len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
