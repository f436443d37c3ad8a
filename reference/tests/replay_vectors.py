#!/usr/bin/python3
"""Replays a vector index (spec/README.md, "Vectors") through `matchwire validate`.

usage: replay_vectors.py MATCHWIRE INDEX.json

Each vector's file is validated (with --json-only for mode "json-only"); the
printed line must match the expected outcome: "ok", or the error code and,
when the vector states one, the offset (null: the line has no " at byte N").
The exit status must be 0 when every file in the batch is valid, else 1.
"""
import json
import os
import re
import subprocess
import sys

LINE = re.compile(r'^(?P<name>.*): (?:ok|error (?P<code>[a-z_]+)(?: at byte (?P<off>\d+))?: .*)$')


def run(cli, files, json_only):
    args = [cli, 'validate'] + (['--json-only'] if json_only else []) + ['--'] + files
    p = subprocess.run(args, capture_output=True, timeout=120)
    if p.stderr:
        sys.stderr.write(p.stderr.decode('utf-8', 'replace'))
    results = {}
    for line in p.stdout.decode('utf-8').splitlines():
        m = LINE.match(line)
        if not m:
            raise SystemExit('unparseable output line: %r' % line)
        results[m.group('name')] = (m.group('code'), m.group('off'), line)
    return p.returncode, results


def main():
    cli, index_path = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.abspath(index_path))
    with open(index_path, encoding='utf-8') as f:
        index = json.load(f)
    failures = []
    for mode in ('envelope', 'json-only'):
        vecs = [v for v in index['vectors'] if v['mode'] == mode]
        if not vecs:
            continue
        files = [os.path.join(root, v['file']) for v in vecs]
        rc, results = run(cli, files, mode == 'json-only')
        all_ok = all(v['expect'] == 'ok' for v in vecs)
        if rc != (0 if all_ok else 1):
            failures.append('%s batch: exit status %d' % (mode, rc))
        for v, path in zip(vecs, files):
            got = results.get(path)
            if got is None:
                failures.append('%s: no output line' % v['id'])
                continue
            code, off, line = got
            if v['expect'] == 'ok':
                if code is not None:
                    failures.append('%s: expected ok, got: %s' % (v['id'], line))
                continue
            if code != v['code']:
                failures.append('%s: expected %s, got: %s' % (v['id'], v['code'], line))
            elif 'offset' in v:
                want = None if v['offset'] is None else str(v['offset'])
                if off != want:
                    failures.append('%s: expected offset %s, got: %s' % (v['id'], want, line))
        # One single-file run per mode checks the per-file exit status too.
        one = vecs[0]
        rc1, _ = run(cli, [os.path.join(root, one['file'])], mode == 'json-only')
        if rc1 != (0 if one['expect'] == 'ok' else 1):
            failures.append('%s: single-file exit status %d' % (one['id'], rc1))
    for f in failures:
        print('FAIL', f)
    print('%s: %d vectors, %d failures' % (index.get('suite'), len(index['vectors']), len(failures)))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
