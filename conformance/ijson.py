"""Strict I-JSON (RFC 8259 restricted by RFC 7493) for the Matchwire suite.

Python's json module accepts too much for a conformance oracle (NaN,
Infinity, duplicate member names, lone surrogates, noncharacters, 1e400), so
this is a small single-pass scanner over bytes written from spec/envelope.md:

- the text is UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) and
  carries no noncharacter (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF), raw or escaped;
- no BOM, no `\\u0000`, no unpaired surrogate escape;
- no duplicate member names (compared after unescaping);
- numbers follow the RFC 8259 grammar and do not overflow a double;
- nesting (arrays and objects, the top level counts as 1) at most max_depth.

A fault is reported with the spec's code (`bad_json` or `too_deep`) and the
byte offset where the input stops being a prefix of a valid text (the input
length when it ends early). Used by the suite to validate what a server
sends and to compute the expected answer to mutated input, and by the
selftest server as its decoder.
"""

MAX_DEPTH = 32
_WS = b" \t\n\r"


class Fault(Exception):
    def __init__(self, code, offset, message):
        super().__init__("%s at %d: %s" % (code, offset, message))
        self.code = code
        self.offset = offset
        self.message = message


def is_nonchar(cp):
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


class _Scanner:
    def __init__(self, buf, max_depth):
        self.b = buf
        self.n = len(buf)
        self.max_depth = max_depth
        self.offsets = None

    def fail(self, pos, msg, code="bad_json"):
        raise Fault(code, pos, msg)

    def ws(self, p):
        b, n = self.b, self.n
        while p < n and b[p] in _WS:
            p += 1
        return p

    def value(self, p, depth):
        if p >= self.n:
            self.fail(p, "unexpected end of input")
        c = self.b[p]
        if c == 0x7B:  # {
            return self.obj(p, depth + 1)
        if c == 0x5B:  # [
            return self.arr(p, depth + 1)
        if c == 0x22:
            return self.string(p)
        if c == 0x2D or 0x30 <= c <= 0x39:
            return self.number(p)
        for lit, val in ((b"true", True), (b"false", False), (b"null", None)):
            if c == lit[0]:
                for i in range(len(lit)):
                    if p + i >= self.n:
                        self.fail(self.n, "unexpected end of input in literal")
                    if self.b[p + i] != lit[i]:
                        self.fail(p + i, "invalid literal")
                return val, p + len(lit)
        self.fail(p, "unexpected byte 0x%02x" % c)

    def obj(self, p, depth):
        if depth > self.max_depth:
            self.fail(p, "nesting deeper than %d" % self.max_depth, "too_deep")
        out = {}
        p = self.ws(p + 1)
        if p < self.n and self.b[p] == 0x7D:
            return out, p + 1
        while True:
            if p >= self.n:
                self.fail(p, "unexpected end of input in object")
            if self.b[p] != 0x22:
                self.fail(p, "expected member name")
            kpos = p
            key, p = self.string(p)
            if key in out:
                self.fail(kpos, "duplicate member name %r" % key)
            p = self.ws(p)
            if p >= self.n:
                self.fail(p, "unexpected end of input in object")
            if self.b[p] != 0x3A:
                self.fail(p, "expected ':'")
            p = self.ws(p + 1)
            if depth == 1 and self.offsets is not None:
                self.offsets[key] = p
            val, p = self.value(p, depth)
            out[key] = val
            p = self.ws(p)
            if p >= self.n:
                self.fail(p, "unexpected end of input in object")
            if self.b[p] == 0x2C:
                p = self.ws(p + 1)
                continue
            if self.b[p] == 0x7D:
                return out, p + 1
            self.fail(p, "expected ',' or '}'")

    def arr(self, p, depth):
        if depth > self.max_depth:
            self.fail(p, "nesting deeper than %d" % self.max_depth, "too_deep")
        out = []
        p = self.ws(p + 1)
        if p < self.n and self.b[p] == 0x5D:
            return out, p + 1
        while True:
            val, p = self.value(p, depth)
            out.append(val)
            p = self.ws(p)
            if p >= self.n:
                self.fail(p, "unexpected end of input in array")
            if self.b[p] == 0x2C:
                p = self.ws(p + 1)
                continue
            if self.b[p] == 0x5D:
                return out, p + 1
            self.fail(p, "expected ',' or ']'")

    def hex4(self, p):
        if p + 4 > self.n:
            return -1
        try:
            s = self.b[p:p + 4].decode("ascii")
            if not all(ch in "0123456789abcdefABCDEF" for ch in s):
                return -1
            return int(s, 16)
        except UnicodeDecodeError:
            return -1

    def string(self, p):
        b, n = self.b, self.n
        out = []
        p += 1
        while True:
            if p >= n:
                self.fail(n, "unterminated string")
            c = b[p]
            if c == 0x22:
                return "".join(out), p + 1
            if c < 0x20:
                self.fail(p, "control byte in string")
            if c == 0x5C:
                if p + 1 >= n:
                    self.fail(p, "unterminated escape")  # its backslash (ENV-053)
                e = b[p + 1]
                simple = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x62: "\b", 0x66: "\f",
                          0x6E: "\n", 0x72: "\r", 0x74: "\t"}
                if e in simple:
                    out.append(simple[e])
                    p += 2
                    continue
                if e != 0x75:
                    self.fail(p, "invalid escape")
                v = self.hex4(p + 2)
                if v < 0:
                    self.fail(p, "invalid \\u escape")
                if v == 0:
                    self.fail(p, "\\u0000 is not allowed")
                if 0xDC00 <= v <= 0xDFFF:
                    self.fail(p, "unpaired surrogate")
                start = p
                if 0xD800 <= v <= 0xDBFF:
                    lo = -1
                    if p + 12 <= n and b[p + 6] == 0x5C and b[p + 7] == 0x75:
                        lo = self.hex4(p + 8)
                    if not 0xDC00 <= lo <= 0xDFFF:
                        self.fail(p, "unpaired surrogate")
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    p += 6
                if is_nonchar(v):
                    self.fail(start, "noncharacter")
                out.append(chr(v))
                p += 6
                continue
            if c < 0x80:
                # run of plain ASCII
                q = p
                while q < n and 0x20 <= b[q] < 0x80 and b[q] not in (0x22, 0x5C):
                    q += 1
                out.append(b[p:q].decode("ascii"))
                p = q
                continue
            ln, cp = _utf8_seq(b, p)
            if ln == 0:
                self.fail(p, "invalid UTF-8")
            if is_nonchar(cp):
                self.fail(p, "noncharacter")
            out.append(chr(cp))
            p += ln

    def number(self, p):
        b, n = self.b, self.n
        q = p
        if b[q] == 0x2D:
            q += 1
        if q >= n:
            self.fail(q, "unexpected end of input in number")
        if b[q] == 0x30:
            q += 1
        elif 0x31 <= b[q] <= 0x39:
            while q < n and 0x30 <= b[q] <= 0x39:
                q += 1
        else:
            self.fail(q, "expected digit")
        plain = True
        if q < n and b[q] == 0x2E:
            plain = False
            q += 1
            if q >= n:
                self.fail(q, "unexpected end of input in number")
            if not 0x30 <= b[q] <= 0x39:
                self.fail(q, "expected digit after '.'")
            while q < n and 0x30 <= b[q] <= 0x39:
                q += 1
        if q < n and b[q] in (0x65, 0x45):
            plain = False
            q += 1
            if q < n and b[q] in (0x2B, 0x2D):
                q += 1
            if q >= n:
                self.fail(q, "unexpected end of input in number")
            if not 0x30 <= b[q] <= 0x39:
                self.fail(q, "expected digit in exponent")
            while q < n and 0x30 <= b[q] <= 0x39:
                q += 1
        text = b[p:q].decode("ascii")
        try:
            d = float(text)
        except OverflowError:
            d = float("inf")
        if d in (float("inf"), float("-inf")):
            self.fail(p, "number overflows a double")
        if plain:
            return int(text), q
        return d, q


def _utf8_seq(b, p):
    """(length, code point) of the UTF-8 sequence at p, (0, cp) if ill-formed."""
    c = b[p]
    lo, hi = 0x80, 0xBF
    if 0xC2 <= c <= 0xDF:
        ln, cp = 2, c & 0x1F
    elif 0xE0 <= c <= 0xEF:
        ln, cp = 3, c & 0x0F
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F
    elif 0xF0 <= c <= 0xF4:
        ln, cp = 4, c & 0x07
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F
    else:
        return 0, 0
    if p + ln > len(b):
        return 0, 0
    for i in range(1, ln):
        x = b[p + i]
        if i == 1 and not lo <= x <= hi:
            return 0, 0
        if i > 1 and not 0x80 <= x <= 0xBF:
            return 0, 0
        cp = (cp << 6) | (x & 0x3F)
    return ln, cp


def loads(buf, max_depth=MAX_DEPTH):
    """Parses bytes (or str, encoded as UTF-8) as one strict I-JSON text.

    Returns the value (objects as dicts in source order, plain integers as
    int, other numbers as float). Raises Fault(code, offset, message)."""
    if isinstance(buf, str):
        buf = buf.encode("utf-8", "surrogatepass")
    s = _Scanner(bytes(buf), max_depth)
    p = s.ws(0)
    val, p = s.value(p, 0)
    p = s.ws(p)
    if p != s.n:
        s.fail(p, "trailing data after the value")
    return val


def loads_tracked(buf, max_depth=MAX_DEPTH):
    """loads() that also returns {member name: byte offset of its value}
    for the members of a top-level object."""
    if isinstance(buf, str):
        buf = buf.encode("utf-8", "surrogatepass")
    s = _Scanner(bytes(buf), max_depth)
    s.offsets = {}
    p = s.ws(0)
    val, p = s.value(p, 0)
    p = s.ws(p)
    if p != s.n:
        s.fail(p, "trailing data after the value")
    return val, s.offsets


def check(buf, max_depth=MAX_DEPTH):
    """None when buf is strict I-JSON, else the Fault."""
    try:
        loads(buf, max_depth)
        return None
    except Fault as f:
        return f


def valid_utf8(buf):
    """True when buf is well-formed UTF-8 (what a WebSocket text frame needs)."""
    try:
        bytes(buf).decode("utf-8", "strict")
        return True
    except UnicodeDecodeError:
        return False


def _esc(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append({8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t"}.get(o, "\\u%04x" % o))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dumps(v):
    """Compact serialization (raw UTF-8, minimal escapes; ints as ints)."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("I-JSON cannot carry %r" % v)
        if v.is_integer() and abs(v) < 2 ** 53:
            return str(int(v)) if not (v == 0 and str(v).startswith("-")) else "-0"
        return repr(v)
    if isinstance(v, str):
        return _esc(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(dumps(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(_esc(k) + ":" + dumps(x) for k, x in v.items()) + "}"
    raise TypeError("cannot serialize %r" % type(v))
