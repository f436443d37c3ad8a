#!/usr/bin/python3
"""Checks requirement ids of one spec document against vector indexes.

usage: check_requirements.py SPEC.md PREFIX INDEX.json [INDEX.json...]

- every `[PREFIX-nnn]` defined in SPEC.md is defined once;
- every defined id is named by at least one vector's "requirements", or is
  listed in an index's "not_vector_testable" with a reason;
- every PREFIX id that a vector names is defined in SPEC.md.
"""
import collections
import json
import os
import sys

# The one reader of requirement ids (conformance/reqs.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "conformance"))
import reqs  # noqa: E402


def main():
    spec, prefix, indexes = sys.argv[1], sys.argv[2], sys.argv[3:]
    defs = collections.Counter(i for i in reqs.defined_ids(spec) if i.startswith(prefix + '-'))
    named, excused = set(), {}
    for path in indexes:
        index = json.load(open(path, encoding='utf-8'))
        for v in index['vectors']:
            named.update(r for r in v['requirements'] if r.startswith(prefix + '-'))
        excused.update(index.get('not_vector_testable', {}))
    problems = []
    problems += ['%s defined %d times' % (i, n) for i, n in sorted(defs.items()) if n > 1]
    problems += ['%s has no vector' % i for i in sorted(defs) if i not in named and i not in excused]
    problems += ['%s named by a vector but not defined' % i for i in sorted(named) if i not in defs]
    problems += ['%s excused but not defined' % i for i in sorted(excused) if i not in defs]
    problems += ['%s excused without a reason' % i for i, r in excused.items() if not r.strip()]
    if not defs:
        problems.append('no %s ids found in %s' % (prefix, spec))
    for p in problems:
        print('FAIL', p)
    print('%s: %d ids defined, %d exercised by vectors, %d not vector-testable, %d problems'
          % (spec, len(defs), len(named & set(defs)), len(excused), len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
