#!/usr/bin/python3
"""Generates spec/vectors/envelope/ and spec/vectors/json/ (index.json + cases/).

The tables below are the source of truth; the generated files are committed so
other implementations can use them without Python. Re-run after editing:

    /usr/bin/python3 spec/vectors/gen_vectors.py          # rewrite the files
    /usr/bin/python3 spec/vectors/gen_vectors.py --check  # fail if stale

An input is written as bytes; `<@>` marks the expected error offset and is
removed from the input. Canonical serializations of valid envelopes are
computed here, independently of the C reference (spec/envelope.md section 6).
"""
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = b"<@>"
NOOFF = object()  # error with no offset (null in index.json)


# --------------------------------------------------------------------------
# Canonical serialization, written from the spec (not from the C code)
# --------------------------------------------------------------------------

def _esc(s):
    out = ['"']
    short = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n',
             '\r': '\\r', '\t': '\\t'}
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append('\\u%04x' % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def _num(d):
    assert math.isfinite(d)
    if d == 0 and math.copysign(1, d) < 0:
        return '-0'
    if d == int(d) and abs(d) <= 2**53 - 1:
        return str(int(d))
    for p in (15, 16, 17):
        s = '%.*g' % (p, d)
        if float(s) == d:
            return s
    raise AssertionError


def _val(v):
    if v is True:
        return 'true'
    if v is False:
        return 'false'
    if v is None:
        return 'null'
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, str):
        return _esc(v)
    if isinstance(v, list):
        return '[' + ','.join(_val(x) for x in v) + ']'
    if isinstance(v, Obj):
        return '{' + ','.join(_esc(k) + ':' + _val(x) for k, x in v.items) + '}'
    raise TypeError(v)


class Obj:
    def __init__(self, items):
        self.items = items


def canonical(raw):
    top = json.loads(raw.decode('utf-8'), object_pairs_hook=Obj, parse_int=float,
                     parse_float=float)
    m = dict(top.items)
    out = '{"type":' + _esc(m['type']) + ',"v":' + str(int(m['v']))
    if 'id' in m:
        out += ',"id":' + _esc(m['id'])
    return out + ',"data":' + _val(m['data']) + '}'


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def env(data=b'{}', type_=b'"a"', v=b'1', id_=None, extra=b''):
    s = b'{"type":' + type_ + b',"v":' + v
    if id_ is not None:
        s += b',"id":' + id_
    return s + b',"data":' + data + extra + b'}'


def nest_obj(levels, inner=b'{}'):
    """levels nested {"a":...} objects around inner."""
    return b'{"a":' * levels + inner + b'}' * levels


def nest_arr(levels, inner=b'[]'):
    return b'[' * levels + inner + b']' * levels


ENV = []
JSN = []


def V(suite, vid, raw, reqs, expect, desc, mode):
    if MARK in raw:
        off = raw.index(MARK)
        raw = raw.replace(MARK, b'', 1)
        assert MARK not in raw
    else:
        off = None
    e = {'id': vid, 'file': 'cases/%s.json' % vid, 'mode': mode,
         'requirements': reqs, 'description': desc}
    if expect == 'ok':
        assert off is None, vid
        e['expect'] = 'ok'
        if mode == 'envelope':
            e['canonical'] = 'cases/%s.canonical.json' % vid
            e['_canonical_bytes'] = canonical(raw).encode('utf-8')
    else:
        code, offmode = expect
        e['expect'] = 'error'
        e['code'] = code
        if offmode is NOOFF:
            e['offset'] = None
        elif offmode == 'mark':
            assert off is not None, vid
            e['offset'] = off
        elif isinstance(offmode, int):
            e['offset'] = offmode
        # offmode None: offset not checked (absent)
    suite.append((e, raw))


def ok(vid, raw, reqs, desc):
    reqs = reqs + ['ENV-065']
    V(ENV, vid, raw, reqs, 'ok', desc, 'envelope')


def err(vid, raw, code, reqs, desc, off='mark'):
    reqs = reqs + ['ENV-050']
    V(ENV, vid, raw, reqs, (code, off), desc, 'envelope')


# --------------------------------------------------------------------------
# Envelope vectors
# --------------------------------------------------------------------------

TYPICAL = (b'{"type":"match.assigned","v":1,"data":{"ticketId":"tk_01HZX3",'
           b'"matchId":"m_7f3a","queue":"ranked_eu","server":{"host":"203.0.113.7",'
           b'"port":7777},"players":["p1","p2"],"token":"abc.def","version":3}}')

ok('env-001-minimal', b'{"type":"ping","v":1,"data":{}}',
   ['ENV-001', 'ENV-020', 'ENV-021', 'ENV-023', 'ENV-024', 'ENV-060'], 'smallest envelope')
ok('env-002-typical-match-assigned', TYPICAL,
   ['ENV-001', 'ENV-022', 'ENV-062'], 'a typical match.assigned push')
ok('env-003-with-id', b'{"type":"ticket.status","v":1,"id":"req-1","data":{"ticketId":"x"}}',
   ['ENV-025', 'ENV-061'], 'request with a correlation id')
ok('env-004-member-order', b'{"data":{"b":1,"a":2},"id":"x","v":2,"type":"a.b"}',
   ['ENV-027', 'ENV-061', 'ENV-062'], 'top-level members in any order; data order kept')
ok('env-005-whitespace', b' \t\r\n{ "type" :\t"a" ,\r\n"v" : 1 , "data" : { "k" : [ 1 , 2 ] } }\n ',
   ['ENV-009', 'ENV-060'], 'all four whitespace bytes between tokens; canonical form is compact')
ok('env-006-unknown-members', env(extra=b',"extra":[1,{"x":null}],"meta":"\xc3\xa9"'),
   ['ENV-026', 'ENV-065'], 'unknown top-level members are ignored and not serialized')
ok('env-007-v-max', env(v=b'2147483647'), ['ENV-023'], 'v = 2^31-1')
ok('env-008-type-64-bytes', env(type_=b'"' + b'a' * 30 + b'.' + b'b_9' * 11 + b'"'),
   ['ENV-022'], 'type of exactly 64 bytes')
ok('env-009-type-segments', env(type_=b'"a1_b.c_2.d.e0"'), ['ENV-022'],
   'type with digits, underscores and several segments')
ok('env-010-id-64-bytes', env(id_=b'"' + b'x' * 64 + b'"'), ['ENV-025'], 'id of exactly 64 bytes')
ok('env-011-id-1-byte-space', env(id_=b'" "'), ['ENV-025'], 'id of one space (0x20)')
ok('env-012-id-printable', env(id_=b'"~!\\"\\\\/{}"'), ['ENV-025', 'ENV-063'],
   'id with quote, backslash, slash and braces')
ok('env-013-string-escapes', env(data=b'{"s":"a\\/b\\u0041\\u00e9\\n\\u001f\\"\\\\\\b\\f\\r\\t\\u007f"}'),
   ['ENV-063'], 'escapes are decoded; canonical form escapes only ", \\ and controls')
ok('env-014-non-ascii', env(data=b'{"raw":"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e","esc":"\\u00e9\\u20ac\\ud834\\udd1e"}'),
   ['ENV-003', 'ENV-063'], 'non-ASCII raw and escaped (incl. a surrogate pair); written raw')
ok('env-015-numbers', env(data=b'{"a":1.0,"b":1e2,"c":-0,"d":0.1,"e":1e300,"f":9007199254740991,'
                             b'"g":9007199254740993,"h":-1.5e-7,"i":123456789012345678901234567890,'
                             b'"j":1E2,"k":1e+2,"l":-0.0,"m":2.5,"n":-9007199254740991}'),
   ['ENV-008', 'ENV-064'], 'number forms and their canonical output')
ok('env-016-underflow', env(data=b'{"tiny":1e-400,"neg":-1e-400,"sub":5e-324}'),
   ['ENV-008', 'ENV-064'], 'underflow to zero is accepted (sign kept)')
ok('env-017-dbl-max', env(data=b'{"max":1.7976931348623157e308,"r":1.7976931348623158e308}'),
   ['ENV-008'], 'largest double, and a literal that rounds down to it')
ok('env-018-values', env(data=b'{"t":true,"f":false,"n":null,"e":"","a":[],"o":{},"x":[{"y":[null]}]}'),
   ['ENV-024', 'ENV-062'], 'every JSON value kind inside data')
ok('env-019-depth-32-objects', env(data=nest_obj(30)), ['ENV-031'],
   'depth exactly 32: top level 1, data 2, 30 nested objects')
ok('env-020-depth-32-arrays', env(data=b'{"a":' + nest_arr(29) + b'}'), ['ENV-031'],
   'depth exactly 32 with arrays: top 1, data 2, 30 arrays')
ok('env-021-case-sensitive-keys', env(data=b'{"a":1,"A":2,"a ":3}'), ['ENV-007'],
   'names differing in case or trailing space are distinct')
ok('env-022-same-key-other-objects', env(data=b'{"x":{"k":1},"y":{"k":1},"k":[{"k":1},{"k":2}]}',
                                         extra=b',"k":0'),
   ['ENV-007'], 'the same name in different objects is fine')
ok('env-023-data-names-like-top', env(data=b'{"type":"X","v":1.5,"data":null,"id":""}'),
   ['ENV-024', 'ENV-062'], 'data may contain members named type, v, data, id')
ok('env-024-escaped-top-names', b'{"\\u0074ype":"a","\\u0076":1,"\\u0064ata":{},"i\\u0064":"q"}',
   ['ENV-021', 'ENV-023', 'ENV-024', 'ENV-025'], 'top-level names are compared after unescaping')
ok('env-025-escaped-type-value', env(type_=b'"\\u0061.b"'), ['ENV-022'],
   'type is checked after unescaping')
ok('env-026-near-noncharacters', env(data=b'{"a":"\xef\xb7\x8f\xef\xb7\xb0\xef\xbf\xbd\xf4\x8f\xbf\xbd",'
                                     b'"b":"\\ufdcf\\ufdf0\\ufffd\\udbff\\udffd"}'),
   ['ENV-005'], 'U+FDCF, U+FDF0, U+FFFD, U+10FFFD are allowed')
ok('env-027-utf8-boundaries', env(data=b'{"a":"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80"}'),
   ['ENV-003'], 'smallest and largest well-formed sequences of each length')
ok('env-028-many-members', env(data=b'{' + b','.join(b'"k%04d":%d' % (i, i) for i in range(5000)) + b'}'),
   ['ENV-007', 'ENV-062'], '5,000 distinct members in one object (duplicate check must be fast)')
ok('env-029-id-escaped', env(id_=b'"\\u0041b"'), ['ENV-025'], 'id is checked after unescaping')
ok('env-030-data-empty-ws', env(data=b'{ }'), ['ENV-024'], 'empty data with inner whitespace')
ok('env-031-v-plain', env(v=b'7', type_=b'"z"'), ['ENV-023', 'ENV-040'], 'any v is valid at the envelope layer')
ok('env-032-unknown-type-ok-at-codec', env(type_=b'"no.such.type"'), ['ENV-041'],
   'the codec accepts any well-formed type; unknown_type is the catalogue\'s decision')
ok('env-033-unknown-data-members', env(type_=b'"ping"', data=b'{"future":1}'), ['ENV-042'],
   'new optional data members need no new v')
ok('env-034-long-string-escapes', env(data=b'{"s":"' + b'\\u00e9' * 2000 + b'"}'),
   ['ENV-063'], 'decoding never needs more bytes than the escaped text')

# exactly 65,536 bytes
base = env(data=b'{"pad":""}')
pad = 65536 - len(base)
ok('env-035-size-65536', env(data=b'{"pad":"' + b'x' * pad + b'"}'), ['ENV-030'],
   'exactly 65,536 bytes: accepted')
assert len(ENV[-1][1]) == 65536

# ---- bad_json: the text itself ----
err('env-100-empty', b'<@>', 'bad_json', ['ENV-001', 'ENV-052'], 'empty input')
err('env-101-only-ws', b' \n\t\r<@>', 'bad_json', ['ENV-001', 'ENV-052'], 'whitespace only')
err('env-102-two-texts', env() + b' <@>' + env(), 'bad_json', ['ENV-001'], 'two JSON texts')
err('env-103-trailing-garbage', env() + b'<@>x', 'bad_json', ['ENV-001'], 'data after the text')
err('env-104-bom', b'<@>\xef\xbb\xbf' + env(), 'bad_json', ['ENV-002'], 'UTF-8 byte order mark')
err('env-105-utf16le', b'{<@>\x00"\x00t\x00', 'bad_json', ['ENV-002'], 'UTF-16LE text')
err('env-106-utf8-lone-continuation', env(data=b'{"s":"<@>\x80"}'), 'bad_json', ['ENV-003', 'ENV-053'], 'stray continuation byte')
err('env-107-utf8-overlong-2', env(data=b'{"s":"<@>\xc0\xaf"}'), 'bad_json', ['ENV-003'], 'overlong "/" (C0 AF)')
err('env-108-utf8-overlong-3', env(data=b'{"s":"<@>\xe0\x80\xaf"}'), 'bad_json', ['ENV-003'], 'overlong 3-byte form')
err('env-109-utf8-overlong-4', env(data=b'{"s":"<@>\xf0\x80\x80\xaf"}'), 'bad_json', ['ENV-003'], 'overlong 4-byte form')
err('env-110-utf8-surrogate-high', env(data=b'{"s":"<@>\xed\xa0\x80"}'), 'bad_json', ['ENV-003'], 'U+D800 encoded in UTF-8')
err('env-111-utf8-surrogate-low', env(data=b'{"s":"<@>\xed\xbf\xbf"}'), 'bad_json', ['ENV-003'], 'U+DFFF encoded in UTF-8')
err('env-112-utf8-above-max', env(data=b'{"s":"<@>\xf4\x90\x80\x80"}'), 'bad_json', ['ENV-003'], 'U+110000')
err('env-113-utf8-f5', env(data=b'{"s":"<@>\xf5\x80\x80\x80"}'), 'bad_json', ['ENV-003'], 'lead byte F5')
err('env-114-utf8-truncated', env(data=b'{"s":"<@>\xe2\x82"}'), 'bad_json', ['ENV-003', 'ENV-053'], 'sequence cut by the closing quote')
err('env-115-utf8-truncated-eof', b'{"type":"<@>\xe2\x82', 'bad_json', ['ENV-003', 'ENV-053'], 'sequence cut by the end of input')
err('env-116-utf8-fe-ff', env(data=b'{"s":"<@>\xfe\xff"}'), 'bad_json', ['ENV-003'], 'bytes FE FF')
err('env-117-utf8-in-key', env(data=b'{"<@>\xc3":1}'), 'bad_json', ['ENV-003'], 'invalid UTF-8 in a member name')
err('env-118-utf8-in-unknown-member', env(extra=b',"x":"<@>\xff"'), 'bad_json', ['ENV-003', 'ENV-026'],
    'unknown members must still be valid I-JSON')
err('env-119-raw-non-ascii-token', env(data=b'{"s":<@>\xc3\xa9}'), 'bad_json', ['ENV-010'], 'non-ASCII outside a string')
err('env-120-lone-high-surrogate', env(data=b'{"s":"<@>\\ud800"}'), 'bad_json', ['ENV-004', 'ENV-053'], 'escaped lone high surrogate')
err('env-121-lone-low-surrogate', env(data=b'{"s":"<@>\\udc00"}'), 'bad_json', ['ENV-004'], 'escaped lone low surrogate')
err('env-122-high-high', env(data=b'{"s":"<@>\\ud800\\ud800"}'), 'bad_json', ['ENV-004'], 'two high surrogates')
err('env-123-high-then-text', env(data=b'{"s":"<@>\\ud800x"}'), 'bad_json', ['ENV-004'], 'high surrogate then a character')
err('env-124-reversed-pair', env(data=b'{"s":"<@>\\udc00\\ud800"}'), 'bad_json', ['ENV-004'], 'low before high')
err('env-125-high-then-short-escape', env(data=b'{"s":"<@>\\ud800\\n"}'), 'bad_json', ['ENV-004'], 'high surrogate then \\n')
err('env-126-nonchar-ffff-raw', env(data=b'{"s":"<@>\xef\xbf\xbf"}'), 'bad_json', ['ENV-005'], 'U+FFFF raw')
err('env-127-nonchar-fffe-raw', env(data=b'{"s":"<@>\xef\xbf\xbe"}'), 'bad_json', ['ENV-005'], 'U+FFFE raw')
err('env-128-nonchar-fdd0-raw', env(data=b'{"s":"<@>\xef\xb7\x90"}'), 'bad_json', ['ENV-005'], 'U+FDD0 raw')
err('env-129-nonchar-fdef-raw', env(data=b'{"s":"<@>\xef\xb7\xaf"}'), 'bad_json', ['ENV-005'], 'U+FDEF raw')
err('env-130-nonchar-1ffff-raw', env(data=b'{"s":"<@>\xf0\x9f\xbf\xbf"}'), 'bad_json', ['ENV-005'], 'U+1FFFF raw')
err('env-131-nonchar-10fffe-raw', env(data=b'{"s":"<@>\xf4\x8f\xbf\xbe"}'), 'bad_json', ['ENV-005'], 'U+10FFFE raw')
err('env-132-nonchar-ffff-esc', env(data=b'{"s":"<@>\\uffff"}'), 'bad_json', ['ENV-005'], '\\uFFFF')
err('env-133-nonchar-fffe-esc', env(data=b'{"s":"a<@>\\uFFFE"}'), 'bad_json', ['ENV-005'], '\\uFFFE')
err('env-134-nonchar-fdd0-esc', env(data=b'{"s":"<@>\\ufdd0"}'), 'bad_json', ['ENV-005'], '\\uFDD0')
err('env-135-nonchar-fdef-esc', env(data=b'{"s":"<@>\\uFDEF"}'), 'bad_json', ['ENV-005'], '\\uFDEF')
err('env-136-nonchar-1fffe-pair', env(data=b'{"s":"<@>\\ud83f\\udffe"}'), 'bad_json', ['ENV-005'], 'U+1FFFE as a pair')
err('env-137-nonchar-10ffff-pair', env(data=b'{"s":"<@>\\udbff\\udfff"}'), 'bad_json', ['ENV-005'], 'U+10FFFF as a pair')
err('env-138-nonchar-in-key', env(data=b'{"<@>\\uffff":1}'), 'bad_json', ['ENV-005'], 'noncharacter in a name')
err('env-139-u0000-string', env(data=b'{"s":"a<@>\\u0000b"}'), 'bad_json', ['ENV-006'], '\\u0000 in a string')
err('env-140-u0000-key', env(data=b'{"k<@>\\u0000x":1,"k\\u0000y":2}'), 'bad_json', ['ENV-006'],
    '\\u0000 in names (cJSON would truncate both to "k" and keep a duplicate)')
err('env-141-u0000-type', env(type_=b'"a<@>\\u0000"'), 'bad_json', ['ENV-006'], '\\u0000 in type')
err('env-142-raw-nul', env(data=b'{"s":"a<@>\x00b"}'), 'bad_json', ['ENV-006', 'ENV-010'], 'raw NUL byte in a string')
err('env-143-dup-type', b'{"type":"a","v":1,<@>"type":"b","data":{}}', 'bad_json', ['ENV-007', 'ENV-054'], 'duplicate type')
err('env-144-dup-data-member', env(data=b'{"x":1,<@>"x":1}'), 'bad_json', ['ENV-007'], 'duplicate in data, same value')
err('env-145-dup-after-unescape', env(data=b'{"a":1,<@>"\\u0061":2}'), 'bad_json', ['ENV-007'], 'names equal after unescaping')
err('env-146-dup-raw-vs-escaped', env(data=b'{"\xc3\xa9":1,<@>"\\u00e9":2}'), 'bad_json', ['ENV-007'], 'raw vs escaped U+00E9')
err('env-147-dup-pair-vs-raw', env(data=b'{"\\ud834\\udd1e":1,<@>"\xf0\x9d\x84\x9e":2}'), 'bad_json', ['ENV-007'], 'pair vs raw U+1D11E')
err('env-148-dup-nested', env(data=nest_obj(5, b'{"q":1,"r":2,<@>"q":3}')), 'bad_json', ['ENV-007'], 'duplicate deep inside data')
err('env-149-dup-many', env(data=b'{' + b','.join(b'"k%04d":0' % i for i in range(4000)) + b',<@>"k1234":1}'),
    'bad_json', ['ENV-007'], 'duplicate after 4,000 members')
err('env-150-dup-data', b'{"type":"a","v":1,"data":{},<@>"data":{}}', 'bad_json', ['ENV-007'], 'duplicate data')
err('env-151-dup-unknown', env(extra=b',"x":1,<@>"x":2'), 'bad_json', ['ENV-007', 'ENV-026'], 'duplicate unknown member')
err('env-152-overflow', env(data=b'{"n":<@>1e400}'), 'bad_json', ['ENV-008', 'ENV-055'], '1e400 overflows')
err('env-153-overflow-neg', env(data=b'{"n":<@>-1e400}'), 'bad_json', ['ENV-008'], '-1e400 overflows')
err('env-154-overflow-just', env(data=b'{"n":<@>1.7976931348623159e308}'), 'bad_json', ['ENV-008'], 'rounds to infinity')
err('env-155-overflow-digits', env(data=b'{"n":<@>1' + b'0' * 400 + b'}'), 'bad_json', ['ENV-008'], '401-digit integer')
err('env-156-overflow-in-v', env(v=b'<@>1e400'), 'bad_json', ['ENV-008', 'ENV-051'], 'bad_json before bad_envelope')
err('env-157-leading-zero', env(data=b'{"n":0<@>1}'), 'bad_json', ['ENV-010'], 'leading zero')
err('env-158-neg-leading-zero', env(data=b'{"n":-0<@>1}'), 'bad_json', ['ENV-010'], '-01')
err('env-159-dot-no-frac', env(data=b'{"n":1.<@>}'), 'bad_json', ['ENV-010', 'ENV-052'], '1.')
err('env-160-no-int', env(data=b'{"n":<@>.5}'), 'bad_json', ['ENV-010'], '.5')
err('env-161-minus-dot', env(data=b'{"n":-<@>.5}'), 'bad_json', ['ENV-010'], '-.5')
err('env-162-plus', env(data=b'{"n":<@>+1}'), 'bad_json', ['ENV-010'], '+1')
err('env-163-exp-no-digits', env(data=b'{"n":1e+<@>}'), 'bad_json', ['ENV-010'], '1e+')
err('env-164-hex', env(data=b'{"n":0<@>x10}'), 'bad_json', ['ENV-010'], 'hex number')
err('env-165-nan', env(data=b'{"n":<@>NaN}'), 'bad_json', ['ENV-010'], 'NaN')
err('env-166-infinity', env(data=b'{"n":-<@>Infinity}'), 'bad_json', ['ENV-010'], '-Infinity')
err('env-167-raw-tab', env(data=b'{"s":"a<@>\tb"}'), 'bad_json', ['ENV-010'], 'raw tab in a string')
err('env-168-raw-newline', env(data=b'{"s":"a<@>\nb"}'), 'bad_json', ['ENV-010'], 'raw LF in a string')
err('env-169-raw-1f', env(data=b'{"s":"<@>\x1f"}'), 'bad_json', ['ENV-010'], 'raw 0x1F in a string')
err('env-170-bad-escape', env(data=b'{"s":"<@>\\x41"}'), 'bad_json', ['ENV-010', 'ENV-053'], '\\x escape')
err('env-171-escaped-quote-single', env(data=b'{"s":"<@>\\\'"}'), 'bad_json', ['ENV-010'], "\\' escape")
err('env-172-u-not-hex', env(data=b'{"s":"<@>\\uqqqq"}'), 'bad_json', ['ENV-010'], '\\uqqqq (cJSON reads U+0000)')
err('env-173-u-short', env(data=b'{"s":"<@>\\u12"}'), 'bad_json', ['ENV-010'], '\\u with 2 digits')
err('env-174-capital-u', env(data=b'{"s":"<@>\\U0041"}'), 'bad_json', ['ENV-010'], '\\U escape')
err('env-175-formfeed-ws', b'{"type":"a",<@>\x0c"v":1,"data":{}}', 'bad_json', ['ENV-009'], 'form feed is not whitespace')
err('env-176-nul-ws', b'{"type":"a",<@>\x00"v":1,"data":{}}', 'bad_json', ['ENV-009'], 'NUL is not whitespace')
err('env-177-nbsp-ws', b'{"type":"a",<@>\xc2\xa0"v":1,"data":{}}', 'bad_json', ['ENV-009'], 'U+00A0 is not whitespace')
err('env-178-vt-ws', b'<@>\x0b' + env(), 'bad_json', ['ENV-009'], 'vertical tab is not whitespace')
err('env-179-trailing-comma-obj', env(data=b'{"a":1,<@>}'), 'bad_json', ['ENV-010'], 'trailing comma in an object')
err('env-180-trailing-comma-arr', env(data=b'{"a":[1,<@>]}'), 'bad_json', ['ENV-010'], 'trailing comma in an array')
err('env-181-missing-comma', env(data=b'{"a":1 <@>"b":2}'), 'bad_json', ['ENV-010'], 'missing comma')
err('env-182-single-quotes', env(data=b"{<@>'a':1}"), 'bad_json', ['ENV-010'], 'single-quoted name')
err('env-183-comment', env(data=b'{<@>/* c */}'), 'bad_json', ['ENV-010'], 'comment')
err('env-184-unquoted-key', env(data=b'{<@>a:1}'), 'bad_json', ['ENV-010'], 'unquoted name')
err('env-185-capital-true', env(data=b'{"a":<@>True}'), 'bad_json', ['ENV-010'], 'True')
err('env-186-truncated-literal', env(data=b'{"a":tru<@>}'), 'bad_json', ['ENV-010', 'ENV-052'], 'tru')
err('env-187-unterminated-string', b'{"type":"abc<@>', 'bad_json', ['ENV-010', 'ENV-052'], 'string cut by the end')
err('env-188-unclosed-object', b'{"type":"a","v":1,"data":{}<@>', 'bad_json', ['ENV-052'], 'object cut by the end')
err('env-189-extra-close', env() + b'<@>}', 'bad_json', ['ENV-001'], 'extra closing brace')
err('env-190-missing-colon', env(data=b'{"a" <@>1}'), 'bad_json', ['ENV-010'], 'missing colon')
err('env-191-v-leading-zero', env(v=b'0<@>1'), 'bad_json', ['ENV-010', 'ENV-051'], 'v written 01 is not JSON')
err('env-192-json-fault-after-envelope-fault', b'{"type":1,"v":1,"data":{},"x":0<@>1}', 'bad_json', ['ENV-051'],
    'bad_json wins over an earlier bad_envelope fault')
# An escape cut by the end of the input is a malformed escape: the offset is
# its backslash, not the input length (ENV-053, issue 14 gap 15).
err('env-193-u-escape-cut-eof', b'{"type":"a","v":1,"data":{"s":"<@>\\u12', 'bad_json', ['ENV-010', 'ENV-053'],
    '\\u escape with 2 digits, then the end of input')
err('env-194-backslash-eof', b'{"type":"a","v":1,"data":{"s":"<@>\\', 'bad_json', ['ENV-010', 'ENV-053'],
    'a backslash, then the end of input')
err('env-195-surrogate-pair-cut-eof', b'{"type":"a","v":1,"data":{"s":"<@>\\uD83D\\uDE', 'bad_json',
    ['ENV-004', 'ENV-053'], 'second escape of a surrogate pair cut by the end: the first escape')

# ---- bad_envelope ----
err('env-200-top-array', b'<@>[]', 'bad_envelope', ['ENV-020', 'ENV-056'], 'top level is an array')
err('env-201-top-string', b'<@>"a"', 'bad_envelope', ['ENV-020'], 'top level is a string')
err('env-202-top-number', b' \n<@>1', 'bad_envelope', ['ENV-020', 'ENV-056'], 'top level is a number (offset skips whitespace)')
err('env-203-top-null', b'<@>null', 'bad_envelope', ['ENV-020'], 'top level is null')
err('env-204-missing-type', b'{"v":1,"data":{}}', 'bad_envelope', ['ENV-021', 'ENV-056'], 'no type', NOOFF)
err('env-205-type-number', env(type_=b'<@>1'), 'bad_envelope', ['ENV-021'], 'type is a number')
err('env-206-type-null', env(type_=b'<@>null'), 'bad_envelope', ['ENV-021'], 'type is null')
err('env-207-type-empty', env(type_=b'<@>""'), 'bad_envelope', ['ENV-022'], 'type is empty')
err('env-208-type-65-bytes', env(type_=b'<@>"' + b'a' * 65 + b'"'), 'bad_envelope', ['ENV-022'], 'type of 65 bytes')
err('env-209-type-upper', env(type_=b'<@>"Match.assigned"'), 'bad_envelope', ['ENV-022'], 'upper case')
err('env-210-type-digit-first', env(type_=b'<@>"1a"'), 'bad_envelope', ['ENV-022'], 'leading digit')
err('env-211-type-trailing-dot', env(type_=b'<@>"a."'), 'bad_envelope', ['ENV-022'], 'trailing dot')
err('env-212-type-double-dot', env(type_=b'<@>"a..b"'), 'bad_envelope', ['ENV-022'], 'empty segment')
err('env-213-type-leading-dot', env(type_=b'<@>".a"'), 'bad_envelope', ['ENV-022'], 'leading dot')
err('env-214-type-hyphen', env(type_=b'<@>"a-b"'), 'bad_envelope', ['ENV-022'], 'hyphen')
err('env-215-type-segment-digit', env(type_=b'<@>"a.1b"'), 'bad_envelope', ['ENV-022'], 'segment starts with a digit')
err('env-216-type-underscore-first', env(type_=b'<@>"a._b"'), 'bad_envelope', ['ENV-022'], 'segment starts with _')
err('env-217-type-space', env(type_=b'<@>"a b"'), 'bad_envelope', ['ENV-022'], 'space')
err('env-218-type-non-ascii', env(type_=b'<@>"\xc3\xa9"'), 'bad_envelope', ['ENV-022'], 'non-ASCII')
err('env-219-type-escaped-upper', env(type_=b'<@>"\\u0041"'), 'bad_envelope', ['ENV-022'], 'escaped A is still upper case')
err('env-220-missing-v', b'{"type":"a","data":{}}', 'bad_envelope', ['ENV-023'], 'no v', NOOFF)
err('env-221-v-zero', env(v=b'<@>0'), 'bad_envelope', ['ENV-023'], 'v = 0')
err('env-222-v-negative', env(v=b'<@>-1'), 'bad_envelope', ['ENV-023'], 'v = -1')
err('env-223-v-too-big', env(v=b'<@>2147483648'), 'bad_envelope', ['ENV-023'], 'v = 2^31')
err('env-224-v-fraction-integral', env(v=b'<@>1.0'), 'bad_envelope', ['ENV-023'], 'v = 1.0')
err('env-225-v-exponent', env(v=b'<@>1e0'), 'bad_envelope', ['ENV-023'], 'v = 1e0')
err('env-226-v-exp-fraction', env(v=b'<@>10E-1'), 'bad_envelope', ['ENV-023'], 'v = 10E-1')
err('env-227-v-string', env(v=b'<@>"1"'), 'bad_envelope', ['ENV-023'], 'v is a string')
err('env-228-v-minus-zero', env(v=b'<@>-0'), 'bad_envelope', ['ENV-023'], 'v = -0')
err('env-229-v-fraction', env(v=b'<@>1.5'), 'bad_envelope', ['ENV-023'], 'v = 1.5')
err('env-230-v-null', env(v=b'<@>null'), 'bad_envelope', ['ENV-023'], 'v is null')
err('env-231-v-huge', env(v=b'<@>99999999999999999999'), 'bad_envelope', ['ENV-023'], 'v has 20 digits')
err('env-232-v-true', env(v=b'<@>true'), 'bad_envelope', ['ENV-023'], 'v is true')
err('env-233-missing-data', b'{"type":"a","v":1}', 'bad_envelope', ['ENV-024'], 'no data', NOOFF)
err('env-234-data-null', env(data=b'<@>null'), 'bad_envelope', ['ENV-024'], 'data is null')
err('env-235-data-array', env(data=b'<@>[]'), 'bad_envelope', ['ENV-024'], 'data is an array')
err('env-236-data-string', env(data=b'<@>"{}"'), 'bad_envelope', ['ENV-024'], 'data is a string')
err('env-237-data-number', env(data=b'<@>0'), 'bad_envelope', ['ENV-024'], 'data is a number')
err('env-238-id-empty', env(id_=b'<@>""'), 'bad_envelope', ['ENV-025'], 'id is empty')
err('env-239-id-65-bytes', env(id_=b'<@>"' + b'x' * 65 + b'"'), 'bad_envelope', ['ENV-025'], 'id of 65 bytes')
err('env-240-id-number', env(id_=b'<@>1'), 'bad_envelope', ['ENV-025'], 'id is a number')
err('env-241-id-null', env(id_=b'<@>null'), 'bad_envelope', ['ENV-025'], 'id is null')
err('env-242-id-control', env(id_=b'<@>"a\\nb"'), 'bad_envelope', ['ENV-025'], 'id with LF')
err('env-243-id-non-ascii', env(id_=b'<@>"\xc3\xa9"'), 'bad_envelope', ['ENV-025'], 'id with U+00E9')
err('env-244-id-del', env(id_=b'<@>"\\u007f"'), 'bad_envelope', ['ENV-025'], 'id with DEL')
err('env-245-order-type-first', b'{"v":0,"id":5,"data":1}', 'bad_envelope', ['ENV-051'], 'missing type reported first', NOOFF)
err('env-246-order-v-before-id', b'{"type":"a","v":<@>0,"id":5,"data":1}', 'bad_envelope', ['ENV-051'], 'v before id')
err('env-247-order-id-before-data', b'{"data":1,"type":"a","v":1,"id":<@>5}', 'bad_envelope', ['ENV-051'], 'id before data')
err('env-248-type-is-object', env(type_=b'<@>{"a":1}'), 'bad_envelope', ['ENV-021'], 'type is an object')

# ---- too_deep ----
err('env-300-depth-33-objects', env(data=nest_obj(31, b'<@>{}')), 'too_deep', ['ENV-031', 'ENV-057'],
    'depth 33: top 1, data 2, 31 nested objects')
err('env-301-depth-33-arrays', env(data=b'{"a":' + nest_arr(30, b'<@>[]') + b'}'), 'too_deep', ['ENV-031'],
    'depth 33 with arrays')
err('env-302-depth-33-unknown', env(extra=b',"x":' + nest_arr(31, b'<@>[]')), 'too_deep', ['ENV-031', 'ENV-026'],
    'depth 33 in an unknown member')
err('env-303-depth-1000', b'[' * 32 + b'<@>' + b'[' * 968 + b']' * 1000, 'too_deep', ['ENV-031', 'ENV-057'],
    '1,000 nested arrays: rejected at the 33rd')
err('env-304-deep-then-bad-json', env(data=nest_obj(31, b'<@>{}'), extra=b',"x":01'), 'too_deep', ['ENV-051'],
    'the first fault in byte order wins (too_deep)')
err('env-305-bad-json-then-deep', env(data=b'{"x":0<@>1,"y":' + nest_arr(40) + b'}'), 'bad_json', ['ENV-051'],
    'the first fault in byte order wins (bad_json)')
err('env-306-deep-unclosed', b'[' * 32 + b'<@>[', 'too_deep', ['ENV-031'], 'too_deep even when the text is cut')

# ---- too_large ----
big = env(data=b'{"pad":"' + b'x' * (pad + 1) + b'"}')
assert len(big) == 65537
err('env-400-size-65537', big, 'too_large', ['ENV-030', 'ENV-058'], '65,537 bytes: rejected', 65536)
err('env-401-size-65537-garbage', b'\xff' * 65537, 'too_large', ['ENV-030', 'ENV-051'],
    'too_large is checked before anything else', 65536)


# --------------------------------------------------------------------------
# JSON-only vectors: JSONTestSuite-style cases (y_ accepted, n_ rejected,
# i_ decided by I-JSON), checked without envelope rules. Names follow
# nst/JSONTestSuite test_parsing/ where the case exists there.
# --------------------------------------------------------------------------

def jy(name, raw, reqs=('ENV-001',)):
    V(JSN, name, raw, list(reqs), 'ok', 'must be accepted', 'json-only')


def jn(name, raw, reqs=('ENV-010',), code='bad_json'):
    V(JSN, name, raw, list(reqs), (code, None), 'must be rejected', 'json-only')


def ji(name, raw, accept, reqs, code='bad_json'):
    if accept:
        V(JSN, name, raw, list(reqs), 'ok', 'implementation-defined in RFC 8259; accepted by I-JSON', 'json-only')
    else:
        V(JSN, name, raw, list(reqs), (code, None), 'implementation-defined in RFC 8259; rejected by I-JSON', 'json-only')


Y = [
    ('y_array_arraysWithSpaces', b'[[]   ]'),
    ('y_array_empty-string', b'[""]'),
    ('y_array_empty', b'[]'),
    ('y_array_ending_with_newline', b'["a"]\n'),
    ('y_array_false', b'[false]'),
    ('y_array_heterogeneous', b'[null, 1, "1", {}]'),
    ('y_array_null', b'[null]'),
    ('y_array_with_1_and_newline', b'[1\n]'),
    ('y_array_with_leading_space', b' [1]'),
    ('y_array_with_several_null', b'[1,null,null,null,2]'),
    ('y_array_with_trailing_space', b'[2] '),
    ('y_number', b'[123e65]'),
    ('y_number_0e+1', b'[0e+1]'),
    ('y_number_0e1', b'[0e1]'),
    ('y_number_after_space', b'[ 4]'),
    ('y_number_double_close_to_zero', b'[-0.000000000000000000000000000000000000000000000000000000000000000000000000000001]'),
    ('y_number_int_with_exp', b'[20e1]'),
    ('y_number_minus_zero', b'[-0]'),
    ('y_number_negative_int', b'[-123]'),
    ('y_number_negative_one', b'[-1]'),
    ('y_number_negative_zero', b'[-0]'),
    ('y_number_real_capital_e', b'[1E22]'),
    ('y_number_real_capital_e_neg_exp', b'[1E-2]'),
    ('y_number_real_capital_e_pos_exp', b'[1E+2]'),
    ('y_number_real_exponent', b'[123e45]'),
    ('y_number_real_fraction_exponent', b'[123.456e78]'),
    ('y_number_real_neg_exp', b'[1e-2]'),
    ('y_number_real_pos_exponent', b'[1e+2]'),
    ('y_number_simple_int', b'[123]'),
    ('y_number_simple_real', b'[123.456789]'),
    ('y_object', b'{"asd":"sdf", "dfg":"fgh"}'),
    ('y_object_basic', b'{"asd":"sdf"}'),
    ('y_object_duplicated_key_and_value_distinct', b'{"a":"b","A":"b"}'),
    ('y_object_empty', b'{}'),
    ('y_object_empty_key', b'{"":0}'),
    ('y_object_extreme_numbers', b'{ "min": -1.0e+28, "max": 1.0e+28 }'),
    ('y_object_long_strings', b'{"x":[{"id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}], "id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'),
    ('y_object_simple', b'{"a":[]}'),
    ('y_object_string_unicode', b'{"title":"\\u041f\\u043e\\u043b\\u0442\\u043e\\u0440\\u0430 \\u0417\\u0435\\u043c\\u043b\\u0435\\u043a\\u043e\\u043f\\u0430" }'),
    ('y_object_with_newlines', b'{\n"a": "b"\n}'),
    ('y_string_1_2_3_bytes_UTF-8_sequences', b'["\\u0060\\u012a\\u12AB"]'),
    ('y_string_accepted_surrogate_pair', b'["\\uD801\\udc37"]'),
    ('y_string_accepted_surrogate_pairs', b'["\\ud83d\\ude39\\ud83d\\udc8d"]'),
    ('y_string_allowed_escapes', b'["\\"\\\\\\/\\b\\f\\n\\r\\t"]'),
    ('y_string_backslash_and_u_escaped_zero', b'["\\\\u0000"]'),
    ('y_string_backslash_doublequotes', b'["\\""]'),
    ('y_string_comments', b'["a/*b*/c/*d//e"]'),
    ('y_string_double_escape_a', b'["\\\\a"]'),
    ('y_string_double_escape_n', b'["\\\\n"]'),
    ('y_string_escaped_control_character', b'["\\u0012"]'),
    ('y_string_in_array', b'["asd"]'),
    ('y_string_in_array_with_leading_space', b'[ "asd"]'),
    ('y_string_last_surrogates_1_and_2', b'["\\uDBFF\\uDFFD"]'),
    ('y_string_nbsp_uescaped', b'["new\\u00A0line"]'),
    ('y_string_nonCharacterInUTF-8_U+1FFFF_replaced', b'["\\ud83f\\udffd"]'),
    ('y_string_null_escape_letter', b'["\\\\0"]'),
    ('y_string_one-byte-utf-8', b'["\\u002c"]'),
    ('y_string_pi', b'["\xcf\x80"]'),
    ('y_string_reservedCharacterInUTF-8_U+1BFFF', b'["\xf0\x9b\xbf\xbf"]'),
    ('y_string_simple_ascii', b'["asd "]'),
    ('y_string_space', b'" "'),
    ('y_string_three-byte-utf-8', b'["\\u0821"]'),
    ('y_string_two-byte-utf-8', b'["\\u0123"]'),
    ('y_string_u+2028_line_sep', b'["\xe2\x80\xa8"]'),
    ('y_string_u+2029_par_sep', b'["\xe2\x80\xa9"]'),
    ('y_string_uEscape', b'["\\u0061\\u30af\\u30EA\\u30b9"]'),
    ('y_string_uescaped_newline', b'["new\\u000Aline"]'),
    ('y_string_unescaped_char_delete', b'["\x7f"]'),
    ('y_string_unicode', b'["\\uA66D"]'),
    ('y_string_unicodeEscapedBackslash', b'["\\u005C"]'),
    ('y_string_unicode_2', b'["\xe2\x8d\x82\xe3\x88\xb4\xe2\x8d\x82"]'),
    ('y_string_unicode_U+10FFFE_nonchar_replaced', b'["\\udbff\\udffd"]'),
    ('y_string_unicode_U+200B_ZERO_WIDTH_SPACE', b'["\\u200B"]'),
    ('y_string_unicode_U+2064_invisible_plus', b'["\\u2064"]'),
    ('y_string_unicode_escaped_double_quote', b'["\\u0022"]'),
    ('y_string_utf8', b'["\xe2\x82\xac\xf0\x9d\x84\x9e"]'),
    ('y_string_with_del_character', b'["a\x7fa"]'),
    ('y_structure_lonely_false', b'false'),
    ('y_structure_lonely_int', b'42'),
    ('y_structure_lonely_negative_real', b'-0.1'),
    ('y_structure_lonely_null', b'null'),
    ('y_structure_lonely_string', b'"asd"'),
    ('y_structure_lonely_true', b'true'),
    ('y_structure_string_empty', b'""'),
    ('y_structure_trailing_newline', b'["a"]\n'),
    ('y_structure_true_in_array', b'[true]'),
    ('y_structure_whitespace_array', b' [] '),
    ('y_mw_depth_32', nest_arr(31)),
    ('y_mw_many_members', b'{' + b','.join(b'"%d":%d' % (i, i) for i in range(3000)) + b'}'),
]
for name, raw in Y:
    reqs = ['ENV-001']
    if 'depth' in name:
        reqs = ['ENV-031']
    elif 'members' in name:
        reqs = ['ENV-007']
    jy(name, raw, reqs)

N = [
    ('n_array_1_true_without_comma', b'[1 true]'),
    ('n_array_a_invalid_utf8', b'[a\xe5]'),
    ('n_array_colon_instead_of_comma', b'["": 1]'),
    ('n_array_comma_after_close', b'[""],'),
    ('n_array_comma_and_number', b'[,1]'),
    ('n_array_double_comma', b'[1,,2]'),
    ('n_array_double_extra_comma', b'["x",,]'),
    ('n_array_extra_close', b'["x"]]'),
    ('n_array_extra_comma', b'["",]'),
    ('n_array_incomplete', b'["x"'),
    ('n_array_incomplete_invalid_value', b'[x'),
    ('n_array_inner_array_no_comma', b'[3[4]]'),
    ('n_array_invalid_utf8', b'[\xff]'),
    ('n_array_items_separated_by_semicolon', b'[1:2]'),
    ('n_array_just_comma', b'[,]'),
    ('n_array_just_minus', b'[-]'),
    ('n_array_missing_value', b'[   , ""]'),
    ('n_array_newlines_unclosed', b'["a",\n4\n,1,'),
    ('n_array_number_and_comma', b'[1,]'),
    ('n_array_number_and_several_commas', b'[1,,]'),
    ('n_array_spaces_vertical_tab_formfeed', b'["\x0ba"\\f]'),
    ('n_array_star_inside', b'[*]'),
    ('n_array_unclosed', b'[""'),
    ('n_array_unclosed_trailing_comma', b'[1,'),
    ('n_array_unclosed_with_new_lines', b'[1,\n1\n,1'),
    ('n_array_unclosed_with_object_inside', b'[{}'),
    ('n_incomplete_false', b'[fals]'),
    ('n_incomplete_null', b'[nul]'),
    ('n_incomplete_true', b'[tru]'),
    ('n_number_++', b'[++1234]'),
    ('n_number_+1', b'[+1]'),
    ('n_number_+Inf', b'[+Inf]'),
    ('n_number_-01', b'[-01]'),
    ('n_number_-1.0.', b'[-1.0.]'),
    ('n_number_-2.', b'[-2.]'),
    ('n_number_-NaN', b'[-NaN]'),
    ('n_number_.-1', b'[.-1]'),
    ('n_number_.2e-3', b'[.2e-3]'),
    ('n_number_0.1.2', b'[0.1.2]'),
    ('n_number_0.3e+', b'[0.3e+]'),
    ('n_number_0.3e', b'[0.3e]'),
    ('n_number_0.e1', b'[0.e1]'),
    ('n_number_0_capital_E+', b'[0E+]'),
    ('n_number_0_capital_E', b'[0E]'),
    ('n_number_0e+', b'[0e+]'),
    ('n_number_0e', b'[0e]'),
    ('n_number_1.0e+', b'[1.0e+]'),
    ('n_number_1.0e-', b'[1.0e-]'),
    ('n_number_1.0e', b'[1.0e]'),
    ('n_number_1_000', b'[1 000.0]'),
    ('n_number_1eE2', b'[1eE2]'),
    ('n_number_2.e+3', b'[2.e+3]'),
    ('n_number_2.e-3', b'[2.e-3]'),
    ('n_number_2.e3', b'[2.e3]'),
    ('n_number_9.e+', b'[9.e+]'),
    ('n_number_Inf', b'[Inf]'),
    ('n_number_NaN', b'[NaN]'),
    ('n_number_U+FF11_fullwidth_digit_one', b'[\xef\xbc\x91]'),
    ('n_number_expression', b'[1+2]'),
    ('n_number_hex_1_digit', b'[0x1]'),
    ('n_number_hex_2_digits', b'[0x42]'),
    ('n_number_infinity', b'[Infinity]'),
    ('n_number_invalid+-', b'[0e+-1]'),
    ('n_number_invalid-negative-real', b'[-123.123foo]'),
    ('n_number_minus_infinity', b'[-Infinity]'),
    ('n_number_minus_sign_with_trailing_garbage', b'[-foo]'),
    ('n_number_minus_space_1', b'[- 1]'),
    ('n_number_neg_int_starting_with_zero', b'[-012]'),
    ('n_number_neg_real_without_int_part', b'[-.123]'),
    ('n_number_neg_with_garbage_at_end', b'[-1x]'),
    ('n_number_real_garbage_after_e', b'[1ea]'),
    ('n_number_real_with_invalid_utf8_after_e', b'[1e\xe5]'),
    ('n_number_real_without_fractional_part', b'[1.]'),
    ('n_number_starting_with_dot', b'[.123]'),
    ('n_number_with_alpha', b'[1.2a-3]'),
    ('n_number_with_alpha_char', b'[1.8011670033376514H-308]'),
    ('n_number_with_leading_zero', b'[012]'),
    ('n_object_bad_value', b'["x", truth]'),
    ('n_object_bracket_key', b'{[: "x"}\n'),
    ('n_object_comma_instead_of_colon', b'{"x", null}'),
    ('n_object_double_colon', b'{"x"::"b"}'),
    ('n_object_emoji', b'{\xf0\x9f\x87\xa8\xf0\x9f\x87\xad}'),
    ('n_object_garbage_at_end', b'{"a":"a" 123}'),
    ('n_object_key_with_single_quotes', b"{key: 'value'}"),
    ('n_object_missing_colon', b'{"a" b}'),
    ('n_object_missing_key', b'{:"b"}'),
    ('n_object_missing_semicolon', b'{"a" "b"}'),
    ('n_object_missing_value', b'{"a":'),
    ('n_object_no-colon', b'{"a"'),
    ('n_object_non_string_key', b'{1:1}'),
    ('n_object_non_string_key_but_huge_number_instead', b'{9999E9999:1}'),
    ('n_object_repeated_null_null', b'{null:null,null:null}'),
    ('n_object_several_trailing_commas', b'{"id":0,,,,,}'),
    ('n_object_single_quote', b"{'a':0}"),
    ('n_object_trailing_comma', b'{"id":0,}'),
    ('n_object_trailing_comment', b'{"a":"b"}/**/'),
    ('n_object_trailing_comment_open', b'{"a":"b"}/**//'),
    ('n_object_trailing_comment_slash_open', b'{"a":"b"}//'),
    ('n_object_two_commas_in_a_row', b'{"a":"b",,"c":"d"}'),
    ('n_object_unquoted_key', b'{a: "b"}'),
    ('n_object_unterminated-value', b'{"a":"a'),
    ('n_object_with_single_string', b'{ "foo" : "bar", "a" }'),
    ('n_object_with_trailing_garbage', b'{"a":"b"}#'),
    ('n_single_space', b' '),
    ('n_string_1_surrogate_then_escape', b'["\\uD800\\"]'),
    ('n_string_1_surrogate_then_escape_u', b'["\\uD800\\u"]'),
    ('n_string_1_surrogate_then_escape_u1', b'["\\uD800\\u1"]'),
    ('n_string_1_surrogate_then_escape_u1x', b'["\\uD800\\u1x"]'),
    ('n_string_accentuated_char_no_quotes', b'[\xc3\xa9]'),
    ('n_string_backslash_00', b'["\\\x00"]'),
    ('n_string_escape_x', b'["\\x00"]'),
    ('n_string_escaped_backslash_bad', b'["\\\\\\"]'),
    ('n_string_escaped_ctrl_char_tab', b'["\\\t"]'),
    ('n_string_escaped_emoji', b'["\\\xf0\x9f\x8c\x80"]'),
    ('n_string_incomplete_escape', b'["\\"]'),
    ('n_string_incomplete_escaped_character', b'["\\u00A"]'),
    ('n_string_incomplete_surrogate', b'["\\uD834\\uDd"]'),
    ('n_string_incomplete_surrogate_escape_invalid', b'["\\uD800\\uD800\\x"]'),
    ('n_string_invalid-utf-8-in-escape', b'["\\u\xe5"]'),
    ('n_string_invalid_backslash_esc', b'["\\a"]'),
    ('n_string_invalid_unicode_escape', b'["\\uqqqq"]'),
    ('n_string_invalid_utf8_after_escape', b'["\\\xe5"]'),
    ('n_string_leading_uescaped_thinspace', b'[\\u0020"asd"]'),
    ('n_string_no_quotes_with_bad_escape', b'[\\n]'),
    ('n_string_single_doublequote', b'"'),
    ('n_string_single_quote', b"['single quote']"),
    ('n_string_single_string_no_double_quotes', b'abc'),
    ('n_string_start_escape_unclosed', b'["\\'),
    ('n_string_unescaped_ctrl_char', b'["a\x00a"]'),
    ('n_string_unescaped_newline', b'["new\nline"]'),
    ('n_string_unescaped_tab', b'["\t"]'),
    ('n_string_unicode_CapitalU', b'"\\UA66D"'),
    ('n_string_with_trailing_garbage', b'""x'),
    ('n_structure_U+2060_word_joined', b'[\xe2\x81\xa0]'),
    ('n_structure_UTF8_BOM_no_data', b'\xef\xbb\xbf'),
    ('n_structure_angle_bracket_.', b'<.>'),
    ('n_structure_angle_bracket_null', b'[<null>]'),
    ('n_structure_array_trailing_garbage', b'[1]x'),
    ('n_structure_array_with_extra_array_close', b'[1]]'),
    ('n_structure_array_with_unclosed_string', b'["asd]'),
    ('n_structure_ascii-unicode-identifier', b'a\xc3\xa5'),
    ('n_structure_capitalized_True', b'[True]'),
    ('n_structure_close_unopened_array', b'1]'),
    ('n_structure_comma_instead_of_closing_brace', b'{"x": true,'),
    ('n_structure_double_array', b'[][]'),
    ('n_structure_end_array', b']'),
    ('n_structure_incomplete_UTF8_BOM', b'\xef\xbb{}'),
    ('n_structure_lone-invalid-utf-8', b'\xe5'),
    ('n_structure_lone-open-bracket', b'['),
    ('n_structure_no_data', b''),
    ('n_structure_null-byte-outside-string', b'[\x00]'),
    ('n_structure_number_with_trailing_garbage', b'2@'),
    ('n_structure_object_followed_by_closing_object', b'{}}'),
    ('n_structure_object_unclosed_no_value', b'{"":'),
    ('n_structure_object_with_comment', b'{"a":/*comment*/"b"}'),
    ('n_structure_object_with_trailing_garbage', b'{"a": true} "x"'),
    ('n_structure_open_array_apostrophe', b"['"),
    ('n_structure_open_array_comma', b'[,'),
    ('n_structure_open_array_open_object', b'[{'),
    ('n_structure_open_array_open_string', b'["a'),
    ('n_structure_open_array_string', b'["a"'),
    ('n_structure_open_object', b'{'),
    ('n_structure_open_object_close_array', b'{]'),
    ('n_structure_open_object_comma', b'{,'),
    ('n_structure_open_object_open_array', b'{['),
    ('n_structure_open_object_open_string', b'{"a'),
    ('n_structure_open_object_string_with_apostrophes', b"{'a'"),
    ('n_structure_open_open', b'["\\{["\\{["\\{["\\{'),
    ('n_structure_single_star', b'*'),
    ('n_structure_trailing_#', b'{"a":"b"}#{}'),
    ('n_structure_uescaped_LF_before_string', b'[\\u000A""]'),
    ('n_structure_unclosed_array', b'[1'),
    ('n_structure_unclosed_array_partial_null', b'[ false, nul'),
    ('n_structure_unclosed_array_unfinished_false', b'[ true, fals'),
    ('n_structure_unclosed_array_unfinished_true', b'[ false, tru'),
    ('n_structure_unclosed_object', b'{"asd":"asd"'),
    ('n_structure_unicode-identifier', b'\xc3\xa5'),
    ('n_structure_whitespace_U+2060_word_joiner', b'[\xe2\x81\xa0]'),
    ('n_structure_whitespace_formfeed', b'[\x0c]'),
    ('n_mw_formfeed_between_tokens', b'[1,\x0c2]'),
    ('n_mw_nul_whitespace', b'[1,\x002]'),
]
for name, raw in N:
    reqs = ['ENV-010']
    if 'utf8' in name.lower() or 'utf-8' in name.lower():
        reqs = ['ENV-003', 'ENV-010']
    if 'BOM' in name:
        reqs = ['ENV-002']
    if 'whitespace' in name or 'formfeed' in name or 'nul_whitespace' in name:
        reqs = ['ENV-009']
    jn(name, raw, reqs)

# i_: implementation-defined by RFC 8259, decided here by I-JSON (ENV rules)
I = [
    ('i_number_double_huge_neg_exp', b'[123.456e-789]', True, ['ENV-008']),
    ('i_number_huge_exp', b'[0.4e00669999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999969999999006]', False, ['ENV-008']),
    ('i_number_neg_int_huge_exp', b'[-1e+9999]', False, ['ENV-008']),
    ('i_number_pos_double_huge_exp', b'[1.5e+9999]', False, ['ENV-008']),
    ('i_number_real_neg_overflow', b'[-123123e100000]', False, ['ENV-008']),
    ('i_number_real_pos_overflow', b'[123123e100000]', False, ['ENV-008']),
    ('i_number_real_underflow', b'[123e-10000000]', True, ['ENV-008']),
    ('i_number_too_big_neg_int', b'[-123123123123123123123123123123]', True, ['ENV-008']),
    ('i_number_too_big_pos_int', b'[100000000000000000000]', True, ['ENV-008']),
    ('i_number_very_big_negative_int', b'[-237462374673276894279832749832423479823246327846]', True, ['ENV-008']),
    ('i_object_key_lone_2nd_surrogate', b'{"\\uDFAA":0}', False, ['ENV-004']),
    ('i_string_1st_surrogate_but_2nd_missing', b'["\\uDADA"]', False, ['ENV-004']),
    ('i_string_1st_valid_surrogate_2nd_invalid', b'["\\uD888\\u1234"]', False, ['ENV-004']),
    ('i_string_UTF-16LE_with_BOM', b'\xff\xfe[\x00"\x00\xe9\x00"\x00]\x00', False, ['ENV-002']),
    ('i_string_UTF-8_invalid_sequence', b'["\xe6\x97\xa5\xd1\x88\xfa"]', False, ['ENV-003']),
    ('i_string_UTF8_surrogate_U+D800', b'["\xed\xa0\x80"]', False, ['ENV-003']),
    ('i_string_incomplete_surrogate_and_escape_valid', b'["\\uD800\\n"]', False, ['ENV-004']),
    ('i_string_incomplete_surrogate_pair', b'["\\uDd1ea"]', False, ['ENV-004']),
    ('i_string_incomplete_surrogates_escape_valid', b'["\\uD800\\uD800\\n"]', False, ['ENV-004']),
    ('i_string_invalid_lonely_surrogate', b'["\\ud800"]', False, ['ENV-004']),
    ('i_string_invalid_surrogate', b'["\\ud800abc"]', False, ['ENV-004']),
    ('i_string_invalid_utf-8', b'["\xff"]', False, ['ENV-003']),
    ('i_string_inverted_surrogates_U+1D11E', b'["\\uDd1e\\uD834"]', False, ['ENV-004']),
    ('i_string_iso_latin_1', b'["\xe9"]', False, ['ENV-003']),
    ('i_string_lone_second_surrogate', b'["\\uDFAA"]', False, ['ENV-004']),
    ('i_string_lone_utf8_continuation_byte', b'["\x81"]', False, ['ENV-003']),
    ('i_string_not_in_unicode_range', b'["\xf4\xbf\xbf\xbf"]', False, ['ENV-003']),
    ('i_string_overlong_sequence_2_bytes', b'["\xc0\xaf"]', False, ['ENV-003']),
    ('i_string_overlong_sequence_6_bytes', b'["\xfc\x83\xbf\xbf\xbf\xbf"]', False, ['ENV-003']),
    ('i_string_overlong_sequence_6_bytes_null', b'["\xfc\x80\x80\x80\x80\x80"]', False, ['ENV-003']),
    ('i_string_truncated-utf-8', b'["\xe0\xff"]', False, ['ENV-003']),
    ('i_string_utf16BE_no_BOM', b'\x00[\x00"\x00\xe9\x00"\x00]', False, ['ENV-002']),
    ('i_string_utf16LE_no_BOM', b'[\x00"\x00\xe9\x00"\x00]\x00', False, ['ENV-002']),
    ('i_structure_500_nested_arrays', nest_arr(499), False, ['ENV-031']),
    ('i_structure_UTF-8_BOM_empty_object', b'\xef\xbb\xbf{}', False, ['ENV-002']),
    ('i_mw_object_duplicated_key', b'{"a":"b","a":"c"}', False, ['ENV-007']),
    ('i_mw_object_same_key_unclear_values', b'{"a":0, "a":-0}', False, ['ENV-007']),
    ('i_mw_string_u0000', b'["\\u0000"]', False, ['ENV-006']),
    ('i_mw_object_key_u0000', b'{"\\u0000":0}', False, ['ENV-006']),
    ('i_mw_string_nonchar_ffff', b'["\\uFFFF"]', False, ['ENV-005']),
    ('i_mw_string_nonchar_fdd0_raw', b'["\xef\xb7\x90"]', False, ['ENV-005']),
    ('i_mw_string_nonchar_1fffe', b'["\\uD83F\\uDFFE"]', False, ['ENV-005']),
    ('i_mw_string_nonchar_10ffff_raw', b'["\xf4\x8f\xbf\xbf"]', False, ['ENV-005']),
    ('i_mw_number_dbl_max_plus', b'[1.7976931348623159e308]', False, ['ENV-008']),
    ('i_mw_number_dbl_max', b'[1.7976931348623157e308]', True, ['ENV-008']),
    ('i_mw_depth_33', nest_arr(32), False, ['ENV-031']),
]
for name, raw, accept, reqs in I:
    code = 'too_deep' if 'nested' in name or 'depth' in name else 'bad_json'
    ji(name, raw, accept, reqs, code)

# n_ depth cases from the suite are too_deep here (they nest past 32)
jn('n_mw_50000_opening_arrays', b'[' * 50000, ['ENV-031'], code='too_deep')
jn('n_structure_open_array_object', b'[{"":' * 5000 + b'\n', ['ENV-031'], code='too_deep')


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

NOT_VECTOR_TESTABLE = {
    'ENV-011': 'transport: one envelope per WebSocket text message (conformance suite, messages.md MSG-002)',
    'ENV-012': 'transport: binary messages are never parsed as envelopes (conformance suite, messages.md MSG-093)',
    'ENV-032': 'server reaction to limits (messages.md MSG-091, MSG-094; conformance suite)',
    'ENV-043': 'a rule for authors of message types, not for receivers',
}


def render(suite, name, extra):
    files = {}
    index = {'format': 1, 'suite': name,
             'description': 'see spec/README.md, section "Vectors"'}
    index.update(extra)
    index['vectors'] = []
    seen = set()
    for e, raw in suite:
        assert e['id'] not in seen, e['id']
        seen.add(e['id'])
        files[e['file']] = raw
        if '_canonical_bytes' in e:
            e = dict(e)
            files[e['canonical']] = e.pop('_canonical_bytes')
        index['vectors'].append(e)
    # One vector per line: readable, diffable, small.
    vecs = index.pop('vectors')
    text = json.dumps(index, indent=1, ensure_ascii=False)[:-2]
    text += ',\n "vectors": [\n  '
    text += ',\n  '.join(json.dumps(v, ensure_ascii=False) for v in vecs)
    text += '\n ]\n}\n'
    files['index.json'] = text.encode('utf-8')
    return files


def main():
    check = '--check' in sys.argv
    outputs = {
        'envelope': render(ENV, 'envelope', {'not_vector_testable': NOT_VECTOR_TESTABLE}),
        'json': render(JSN, 'json', {}),
    }
    outputs_n = {'envelope': ENV, 'json': JSN}
    stale = []
    for sub, files in outputs.items():
        root = os.path.join(HERE, sub)
        for rel, data in files.items():
            path = os.path.join(root, rel)
            old = open(path, 'rb').read() if os.path.exists(path) else None
            if old != data:
                stale.append(path)
                if not check:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, 'wb') as f:
                        f.write(data)
        cases = os.path.join(root, 'cases')
        if os.path.isdir(cases):
            for fn in os.listdir(cases):
                if 'cases/' + fn not in files:
                    stale.append(os.path.join(cases, fn))
                    if not check:
                        os.remove(os.path.join(cases, fn))
    if check and stale:
        print('stale vector files (run spec/vectors/gen_vectors.py):', *stale[:10], sep='\n  ')
        return 1
    for sub, files in outputs.items():
        print('%s: %d vectors' % (sub, len(outputs_n[sub])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
