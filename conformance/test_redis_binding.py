"""channel.md §4-5 seen through Redis: the data layout, the scripts'
effects, the hand-off stream, its consumer group and the worker lease,
exactly as a worker or gateway written in another language relies on them.

The suite reads the testee's Redis (--redis) and, where the spec documents
what a foreign instance writes, acts as one: a foreign gateway creating a
ticket by the create script's documented effects (CHN-050, CHN-080), a
foreign worker committing an assignment by the compare-and-set's documented
effects (CHN-060), reading the hand-off through the consumer group and
holding the lease (CHN-081..083). Nothing here relies on the reference beyond
what channel.md documents.

Profile channel: a gateway and its Redis. Profile multi (per test): tests
that need the worker (matching, sweeping, the hand-off's consumer)."""

import calendar
import time
import uuid

import pytest

import ijson
from conftest import needs_timer
from mwclient import http, uniq, wait_until

pytestmark = pytest.mark.profile("channel")

QUEUED_ENTRY = {"op", "id", "state", "queue", "playerId", "region", "version", "createdAt", "expiresAt"}
REMOVED_ENTRY = {"op", "id", "state", "version"}
FINAL = ("assigned", "cancelled", "expired")


# ---------------------------------------------------------------------------
# Helpers: names, decoding, times
# ---------------------------------------------------------------------------

def key(testee, name):
    return testee.decl["redisPrefix"] + name


def ttl_ms(testee):
    return int(testee.decl["ticketTtlSeconds"] * 1000)


def ret_ms(testee):
    return int(testee.decl["assignedTtlSeconds"] * 1000)


def grace_ms(testee):
    return int(testee.decl["graceSeconds"] * 1000)


def dec(d):
    return {a.decode(): b.decode() for a, b in d.items()}


def ticket_hash(rds, testee, tid):
    return dec(rds.hgetall(key(testee, "mw:ticket:" + tid)))


def idem_key(testee, player, k):
    return key(testee, "mw:idem:%d:%s:%s" % (len(player.encode("utf-8")), player, k))


def ms_of(ts):
    """RFC 3339 UTC with milliseconds (MSG-083) -> Unix milliseconds."""
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(ts[20:23])


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def now_ms():
    return int(time.time() * 1000)


def sid(s):
    """A stream entry id as a comparable tuple."""
    a, b = (s.decode() if isinstance(s, bytes) else s).split("-")
    return int(a), int(b)


def entries_of(rds, testee, tid, count=5000):
    """The hand-off entries of ticket tid among the stream's last `count`,
    oldest first: [(entry id, {field: value})]."""
    out = []
    for eid, f in reversed(rds.xrevrange(key(testee, "mw:tickets"), count=count)):
        d = dec(f)
        if d.get("id") == tid:
            out.append((eid.decode(), d))
    return out


def group_of(rds, stream):
    g = [x for x in rds.xinfo_groups(stream) if x["name"].decode() == "workers"]
    return g[0] if g else None


def wait_consumed(rds, testee, eid):
    """Waits until the hand-off entry eid was delivered to group workers and
    is not pending (CHN-081: read with NOACK, or acknowledged)."""
    stream = key(testee, "mw:tickets")

    def done():
        g = group_of(rds, stream)
        if not g or sid(g["last-delivered-id"]) < sid(eid):
            return False
        return not rds.xpending_range(stream, "workers", min=eid, max=eid, count=1)
    wait_until(done, testee.timeout, "hand-off entry %s read through group workers and acknowledged" % eid)


def counts(rds, testee):
    return {k: int(v) for k, v in dec(rds.hgetall(key(testee, "mw:counts"))).items()}


def zscore(rds, testee, name, member):
    s = rds.zscore(key(testee, name), member)
    return None if s is None else int(s)


class Sub:
    """A foreign instance's SUBSCRIBE, confirmed before it is relied on."""

    def __init__(self, rds, testee, channel):
        self.p = rds.pubsub()
        self.name = key(testee, channel)
        self.p.subscribe(self.name)
        self.timeout = testee.timeout
        self.got = []
        deadline = time.monotonic() + self.timeout
        while True:
            m = self.p.get_message(timeout=0.2)
            if m and m["type"] == "subscribe":
                return
            if time.monotonic() > deadline:
                raise AssertionError("no SUBSCRIBE confirmation for %s" % self.name)

    def wait(self, pred, what, timeout=None):
        """The first message (decoded text) for which pred(text) holds."""
        for t in self.got:
            if pred(t):
                return t
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            m = self.p.get_message(timeout=0.2)
            if m and m["type"] == "message":
                t = m["data"].decode("utf-8")
                self.got.append(t)
                if pred(t):
                    return t
        raise AssertionError("nothing published on %s: %s" % (self.name, what))

    def close(self):
        self.p.close()


@pytest.fixture
def subs(rds, testee):
    made = []

    def make(channel):
        s = Sub(rds, testee, channel)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def about(tid):
    """A predicate on a published JSON text: it names ticket tid."""
    def pred(text):
        try:
            v = ijson.loads(text)
        except Exception:  # noqa: BLE001 - anything unparsable is not ours
            return False
        return isinstance(v, dict) and v.get("ticketId") == tid
    return pred


# ---------------------------------------------------------------------------
# The suite as a foreign gateway and a foreign worker (documented effects)
# ---------------------------------------------------------------------------

# CHN-050 (and CHN-040, CHN-041, CHN-072, CHN-080) as a script of our own:
# ARGV prefix, id, queue, playerId, region, now, expiresAt, ttl+retention.
FOREIGN_CREATE = """
local P, id, q, pl, rg, now, exp, life = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local k = P..'mw:ticket:'..id
redis.call('HSET', k, 'id', id, 'queue', q, 'playerId', pl, 'region', rg, 'state', 'queued',
  'version', '1', 'createdAt', now, 'expiresAt', exp, 'endedAt', '0', 'watchers', '0', 'graceAt', '0')
redis.call('PEXPIRE', k, life)
redis.call('ZADD', P..'mw:queue', now, id)
redis.call('ZADD', P..'mw:deadlines', exp, id)
return redis.call('XADD', P..'mw:tickets', 'MAXLEN', '~', '1000000', '*', 'op', 'queued', 'id', id,
  'state', 'queued', 'queue', q, 'playerId', pl, 'region', rg, 'version', '1', 'createdAt', now,
  'expiresAt', exp)
"""

# CHN-060 as a script of our own: ARGV prefix, retention, matchId,
# assignedAt, then per ticket id, new version, envelope. Returns -1 when
# committed, else the index of the first ticket that failed the check.
FOREIGN_ASSIGN = """
local P, RET, mid, at = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local n = (#ARGV - 4) / 3
for i = 1, n do
  local b = 5 + 3 * (i - 1)
  local s = redis.call('HMGET', P..'mw:ticket:'..ARGV[b], 'state', 'version')
  if s[1] ~= 'queued' or tonumber(s[2]) + 1 ~= tonumber(ARGV[b + 1]) then return i - 1 end
end
for i = 1, n do
  local b = 5 + 3 * (i - 1)
  local id = ARGV[b]
  local k = P..'mw:ticket:'..id
  redis.call('HSET', k, 'state', 'assigned', 'version', ARGV[b + 1], 'envelope', ARGV[b + 2],
    'matchId', mid, 'endedAt', string.format('%d', at), 'graceAt', '0')
  redis.call('ZREM', P..'mw:queue', id)
  redis.call('ZADD', P..'mw:deadlines', at + RET, id)
  redis.call('PEXPIRE', k, RET)
  local f = redis.call('HMGET', k, 'playerId', 'idemKey')
  if f[2] then
    redis.call('PEXPIRE', P..'mw:idem:'..string.len(f[1])..':'..f[1]..':'..f[2], RET)
  end
end
return -1
"""


def foreign_create(rds, testee, queue, player, region=""):
    tid = str(uuid.uuid4())
    now = now_ms()
    eid = rds.eval(FOREIGN_CREATE, 0, testee.decl["redisPrefix"], tid, queue, player, region, str(now),
                   str(now + ttl_ms(testee)), str(ttl_ms(testee) + ret_ms(testee)))
    return tid, eid.decode()


def assigned_envelope(tid, match_id, players, at_ms, version=2):
    return {"type": "match.assigned", "v": 1, "data": {"ticketId": tid, "version": version, "assignment": {
        "matchId": match_id, "connection": "10.0.0.9:7777", "players": [{"playerId": p} for p in players],
        "assignedAt": iso(at_ms)}}}


def foreign_assign(rds, testee, tids, players):
    """Commits one match of tids (each at version 1 -> 2) as a foreign
    worker. Returns (result, {tid: envelope dict}, matchId, assignedAt ms)."""
    mid, at = str(uuid.uuid4()), now_ms()
    envs = {t: assigned_envelope(t, mid, players, at) for t in tids}
    args = [testee.decl["redisPrefix"], str(ret_ms(testee)), mid, str(at)]
    for t in tids:
        args += [t, "2", ijson.dumps(envs[t])]
    return int(rds.eval(FOREIGN_ASSIGN, 0, *args)), envs, mid, at


def assert_final_layout(rds, testee, tid, h, state, version, player=None, idem=None, elapsed_ms=0):
    """What every path to a final state leaves (CHN-041, CHN-060, CHN-070,
    CHN-072, CHN-073): state and version, out of the queue, the deadline at
    endedAt + retention, the retention TTL on the hash and the idempotency
    key, graceAt 0."""
    assert h.get("state") == state and h.get("version") == str(version), h
    assert h.get("graceAt") == "0", "graceAt of a final ticket: %s" % h.get("graceAt")
    ended = int(h["endedAt"])
    assert ended >= int(h["createdAt"]), h
    assert zscore(rds, testee, "mw:queue", tid) is None, "a %s ticket is still in mw:queue" % state
    assert zscore(rds, testee, "mw:deadlines", tid) == ended + ret_ms(testee), \
        "deadline %s, expected endedAt + retention %d" % (zscore(rds, testee, "mw:deadlines", tid),
                                                          ended + ret_ms(testee))
    keys = [key(testee, "mw:ticket:" + tid)] + ([idem_key(testee, player, idem)] if idem else [])
    for k in keys:
        p = rds.pttl(k)
        assert 0 < p <= ret_ms(testee), "PTTL %s = %d, expected at most the retention %d" % (k, p, ret_ms(testee))
        assert p > ret_ms(testee) - elapsed_ms - 2000, \
            "PTTL %s = %d: not set to the retention (%d) when the ticket became final" % (k, p, ret_ms(testee))


# ---------------------------------------------------------------------------
# Profile channel: what a gateway writes
# ---------------------------------------------------------------------------

@pytest.mark.req("CHN-040", "CHN-041", "CHN-050", "CHN-072", "CHN-080")
def test_create_layout(testee, rds, conns, queue):
    ws = conns()
    player, k, region = uniq("pl") + " \u00e9:x", uniq("k"), uniq("rg")
    # r: a number whose shortest round-trip form needs 17 digits (stored
    # exactly, not rounded to 0.3: ENV-064, ENV-065; the json.c:989 survivor).
    attrs = {"region": region, "mmr": 1500, "r": 0.30000000000000004}
    t0 = time.monotonic()
    r = ws.enqueue_ok(queue, player=player, key=k, attributes={"mmr": 1500, "r": 0.30000000000000004},
                      region=region)
    tid = r["ticketId"]
    h = ticket_hash(rds, testee, tid)
    for f, v in (("id", tid), ("queue", queue), ("playerId", player), ("region", region), ("idemKey", k),
                 ("state", "queued"), ("version", "1"), ("endedAt", "0"), ("watchers", "1"), ("graceAt", "0")):
        assert h.get(f) == v, "ticket hash %s = %r, expected %r (hash: %s)" % (f, h.get(f), v, h)
    assert "envelope" not in h and "matchId" not in h, "a queued ticket has assignment fields: %s" % h
    created, exp = int(h["createdAt"]), int(h["expiresAt"])
    assert exp == ms_of(r["expiresAt"]), "expiresAt %d differs from the reply's %s" % (exp, r["expiresAt"])
    assert exp == created + ttl_ms(testee), "expiresAt - createdAt = %d, ticket TTL %d" % (exp - created, ttl_ms(testee))
    assert ijson.check(h["attributes"].encode()) is None and ijson.loads(h["attributes"]) == attrs, h["attributes"]
    # Idempotency key and TTLs (CHN-041): ticket TTL + retention.
    ik = idem_key(testee, player, k)
    assert rds.get(ik) == tid.encode(), "%s does not hold the ticket id" % ik
    life = ttl_ms(testee) + ret_ms(testee)
    slack = int((time.monotonic() - t0) * 1000) + 2000
    for name in (key(testee, "mw:ticket:" + tid), ik):
        p = rds.pttl(name)
        assert life - slack < p <= life, "PTTL %s = %d, expected ticket TTL + retention = %d" % (name, p, life)
    # Sorted sets (CHN-050, CHN-072).
    assert zscore(rds, testee, "mw:queue", tid) == created, "mw:queue score is not createdAt"
    assert zscore(rds, testee, "mw:deadlines", tid) == exp, "mw:deadlines score is not expiresAt"
    # The hand-off entry (CHN-080): exactly the documented fields, once.
    es = entries_of(rds, testee, tid)
    assert len(es) == 1, "expected one hand-off entry for the ticket, found %s" % es
    e = es[0][1]
    assert set(e) == QUEUED_ENTRY, "hand-off entry fields %s, expected %s" % (sorted(e), sorted(QUEUED_ENTRY))
    assert e["op"] == "queued" and e["state"] == "queued" and e["version"] == "1", e
    for f in ("id", "queue", "playerId", "region", "createdAt", "expiresAt"):
        assert e[f] == h[f], "entry %s = %r, hash %r" % (f, e[f], h[f])
    # A replay (MSG-026) returns the ticket unchanged: no second ticket,
    # no second hand-off entry.
    again = conns().enqueue_ok(queue, player=player, key=k, attributes={"mmr": 1500, "r": 0.30000000000000004},
                               region=region)
    assert again["ticketId"] == tid
    h2 = ticket_hash(rds, testee, tid)
    assert (h2["version"], h2["state"], h2["createdAt"]) == ("1", "queued", h["createdAt"]), h2
    assert len(entries_of(rds, testee, tid)) == 1, "the replay appended a hand-off entry"


@pytest.mark.req("CHN-040", "CHN-050")
def test_http_create_layout(testee, rds, queue):
    """Created over HTTP: no watcher (watchers 0), region "" when absent, no
    idemKey or attributes fields without them."""
    r = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": uniq("pl")})
    assert r.status == 201, r.body
    tid = r.json["ticketId"]
    h = ticket_hash(rds, testee, tid)
    assert h.get("watchers") == "0" and h.get("region") == "" and h.get("state") == "queued", h
    assert "idemKey" not in h and "attributes" not in h, h
    assert zscore(rds, testee, "mw:deadlines", tid) == int(h["expiresAt"])
    assert [e["op"] for _, e in entries_of(rds, testee, tid)] == ["queued"]


@pytest.mark.req("CHN-050")
def test_create_writes_no_count(testee, rds, conns, queue):
    """Layout 2 (5.1): a create writes no counter (mw:counts holds only the
    ended states); the ticket is counted by mw:queue. A layout-1 create
    incremented mw:counts queued. Other tickets may end meanwhile (sweeps
    only ever lower or leave a `queued` field alone), so the largest of a
    few observed rises must be 0, while the queue gained the ticket."""
    ws = conns()
    rises = []
    for _ in range(3):
        before = counts(rds, testee).get("queued", 0)
        tid = ws.enqueue_ok(uniq("cf"))["ticketId"]
        rises.append(counts(rds, testee).get("queued", 0) - before)
        assert zscore(rds, testee, "mw:queue", tid) is not None, "the created ticket is not in mw:queue"
    assert max(rises) == 0, "mw:counts queued rose by %s per create: a counter written per ticket" % rises


@pytest.mark.req("CHN-070", "CHN-041", "CHN-072", "CHN-080", "CHN-031")
def test_cancel_layout(testee, rds, conns, subs, queue):
    ended = subs("matchmaking:ended")
    ws = conns()
    player, k = uniq("pl"), uniq("k")
    t0 = time.monotonic()
    tid = ws.enqueue_ok(queue, player=player, key=k)["ticketId"]
    r = ws.request("cancel", {"ticketId": tid})
    assert r["type"] == "cancelled" and r["data"]["version"] == 2, ijson.dumps(r)
    h = ticket_hash(rds, testee, tid)
    assert_final_layout(rds, testee, tid, h, "cancelled", 2, player, k, int((time.monotonic() - t0) * 1000))
    es = entries_of(rds, testee, tid)
    assert [e["op"] for _, e in es] == ["queued", "removed"], es
    e = es[1][1]
    assert set(e) == REMOVED_ENTRY and e == {"op": "removed", "id": tid, "state": "cancelled", "version": "2"}, e
    n = ijson.loads(ended.wait(about(tid), "the ended notice of a cancel"))
    assert set(n) == {"ticketId", "state", "version", "origin"}, n
    assert (n["state"], n["version"]) == ("cancelled", 2) and isinstance(n["origin"], str), n
    # Cancelled again: not_found, nothing changes.
    r = ws.request("cancel", {"ticketId": tid})
    assert r["type"] == "error" and r["data"]["code"] == "not_found"
    assert ticket_hash(rds, testee, tid) == h
    assert len(entries_of(rds, testee, tid)) == 2


@pytest.mark.req("CHN-071", "CHN-072", "MSG-074")
def test_attach_detach_and_grace_fields(testee, rds, conns, queue):
    a, b = conns(), conns()
    tid = a.enqueue_ok(queue)["ticketId"]
    h = ticket_hash(rds, testee, tid)
    created, exp = int(h["createdAt"]), int(h["expiresAt"])
    t0 = time.monotonic()
    assert b.request("watch", {"ticketId": tid})["type"] == "watching"
    wait_until(lambda: ticket_hash(rds, testee, tid).get("watchers") == "2", testee.timeout, "watchers 2")
    b.close()
    wait_until(lambda: ticket_hash(rds, testee, tid).get("watchers") == "1", testee.timeout, "watchers 1")
    h = ticket_hash(rds, testee, tid)
    assert h["graceAt"] == "0" and zscore(rds, testee, "mw:deadlines", tid) == exp, "grace began with a watcher left"
    a.close()
    wait_until(lambda: ticket_hash(rds, testee, tid).get("watchers") == "0", testee.timeout, "watchers 0")
    h = ticket_hash(rds, testee, tid)
    elapsed = int((time.monotonic() - t0) * 1000) + 1000
    assert h["state"] == "queued", "grace ended before it could be observed: %s" % h
    g = int(h["graceAt"])
    assert created + grace_ms(testee) <= g <= created + elapsed + grace_ms(testee), \
        "graceAt %d is not (time of the last detach) + grace %d; createdAt %d" % (g, grace_ms(testee), created)
    assert zscore(rds, testee, "mw:deadlines", tid) == min(exp, g), "deadline is not min(expiresAt, graceAt)"
    # A watcher comes back: watchers 1, graceAt 0, deadline back to expiresAt.
    c = conns()
    assert c.request("watch", {"ticketId": tid})["data"]["state"] == "queued"
    h = ticket_hash(rds, testee, tid)
    assert (h["watchers"], h["graceAt"]) == ("1", "0"), h
    assert zscore(rds, testee, "mw:deadlines", tid) == exp


@pytest.mark.req("CHN-072")
def test_every_ticket_has_its_deadline(testee, rds, conns, queue):
    """An invariant over the whole store: every ticket hash has its member
    in mw:deadlines with the score CHN-072 defines (read atomically)."""
    ws = conns()
    t1 = ws.enqueue_ok(queue)["ticketId"]
    ws.request("cancel", {"ticketId": ws.enqueue_ok(uniq("cf"))["ticketId"]})
    names = list(rds.scan_iter(match=key(testee, "mw:ticket:*"), count=1000))
    assert key(testee, "mw:ticket:" + t1).encode() in names
    checked = 0
    for name in names:
        tid = name.decode()[len(key(testee, "mw:ticket:")):]
        p = rds.pipeline(transaction=True)
        p.hgetall(name)
        p.zscore(key(testee, "mw:deadlines"), tid)
        h, score = p.execute()
        h = dec(h)
        if not h:
            continue  # forgotten meanwhile
        assert score is not None, "ticket %s (%s) has no member in mw:deadlines" % (tid, h.get("state"))
        if h["state"] == "queued":
            g = int(h["graceAt"])
            want = min(int(h["expiresAt"]), g) if g else int(h["expiresAt"])
        else:
            want = int(h["endedAt"]) + ret_ms(testee)
        assert int(score) == want, "ticket %s (%s): deadline %d, expected %d" % (tid, h["state"], score, want)
        checked += 1
    assert checked >= 2


@pytest.mark.req("CHN-034")
def test_redis_url_auth_and_db(testee, rds, conns, queue):
    """The gateway was given the --redis address with a password and a
    database: its keys are in that database (SELECT) and it works (AUTH)."""
    import redis
    u = redis.connection.parse_url(testee.redis)
    db, pw = int(u.get("db") or 0), u.get("password")
    if not db or not pw:
        pytest.skip("CHN-034 needs the testee and --redis on a Redis with a password and a non-zero "
                    "database (redis://:PASSWORD@HOST:PORT/DB)")
    tid = conns().enqueue_ok(queue)["ticketId"]
    assert ticket_hash(rds, testee, tid).get("id") == tid
    other = redis.Redis(host=u.get("host", "127.0.0.1"), port=u.get("port", 6379), password=pw, db=0)
    try:
        assert not other.exists(key(testee, "mw:ticket:" + tid)), "the ticket was written to database 0"
    finally:
        other.close()
    anon = redis.Redis(host=u.get("host", "127.0.0.1"), port=u.get("port", 6379))
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anon.exists("x")  # so the testee's connections did authenticate
    finally:
        anon.close()


@pytest.mark.req("CHN-032", "CHN-023")
def test_resubscribe_rereads_watched_tickets(testee, rds, conns, queue):
    """An assignment committed while the gateway's subscription is down (here:
    committed by a foreign worker whose publish was lost) reaches the watcher
    after the gateway's SUBSCRIBE is confirmed again: it re-reads."""
    ws = conns()
    tid = ws.enqueue_ok(queue, player="solo")["ticketId"]
    assert ws.ping()["type"] == "pong"
    time.sleep(0.5)  # whatever the gateway reads after the enqueue (MSG-041) is done
    res, envs, _, _ = foreign_assign(rds, testee, [tid], ["solo"])
    assert res == -1, "the foreign assignment did not commit"
    assert not ws.quiet(1.0), ("a push arrived with nothing published and the subscription up: "
                               "CHN-032's re-read cannot be told apart")
    killed = rds.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed >= 1, "the gateway holds no subscription on this Redis"
    m = ws.wait_push("match.assigned", tid, timeout=testee.timeout * 2)
    assert m == envs[tid], "pushed %s, stored %s" % (ijson.dumps(m), ijson.dumps(envs[tid]))
    assert ws.ping()["type"] == "pong"
    assert not [x for x in ws.pending if x["type"] == "match.assigned"], "delivered twice"


@pytest.mark.req("CHN-103", "CHN-032")
def test_lost_ticket_reads_not_found(testee, rds, conns, queue):
    """A Redis that lost a ticket's data (here: its hash deleted, as a restart
    without persistence would) makes the ticket not_found everywhere: a
    re-read after resubscription pushes nothing and keeps the connection
    healthy; `watch` and HTTP GET answer not_found."""
    ws = conns()
    tid = ws.enqueue_ok(queue, player="lost")["ticketId"]
    assert ws.ping()["type"] == "pong"
    assert rds.delete(key(testee, "mw:ticket:" + tid)) == 1, "no ticket hash where CHN-040 puts it"
    killed = rds.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed >= 1, "the gateway holds no subscription on this Redis"
    assert not ws.quiet(1.5), "a push arrived for a ticket the store no longer has"
    assert ws.ping()["type"] == "pong"
    r = ws.request("watch", {"ticketId": tid})
    assert r["type"] == "error" and r["data"]["code"] == "not_found", ijson.dumps(r)
    g = http(testee, "GET", "/v1/tickets/" + tid)
    assert g.status == 404 and g.json["code"] == "not_found", (g.status, g.body)


# ---------------------------------------------------------------------------
# Profile multi: what the worker reads and writes
# ---------------------------------------------------------------------------

@pytest.mark.profile("multi")
@pytest.mark.req("CHN-005", "CHN-060", "CHN-041", "CHN-072", "CHN-004", "CHN-070")
def test_assignment_layout_and_payload(testee, rds, conns, subs, queue):
    assigned = subs("matchmaking:assigned")
    a, b = conns(), conns(url=testee.url2 or testee.url)
    pa, ka = uniq("pl"), uniq("k")
    t0 = time.monotonic()
    ta = a.enqueue_ok(queue, player=pa, key=ka)["ticketId"]
    tb = b.enqueue_ok(queue)["ticketId"]
    ma, mb = a.wait_push("match.assigned", ta), b.wait_push("match.assigned", tb)
    for t, m in ((ta, ma), (tb, mb)):
        text = assigned.wait(about(t), "the worker's payload for %s" % t)
        assert ijson.check(text.encode()) is None and len(text.encode()) <= 65536, "payload is not strict I-JSON"
        p = ijson.loads(text)
        assert p["ticketId"] == p["envelope"]["data"]["ticketId"] == t, "ticketId %s, envelope's %s" % (
            p["ticketId"], p["envelope"]["data"].get("ticketId"))
        assert p["envelope"] == m, "published %s, watcher received %s" % (ijson.dumps(p["envelope"]), ijson.dumps(m))
    h = ticket_hash(rds, testee, ta)
    asg = ma["data"]["assignment"]
    assert ijson.loads(h["envelope"]) == ma and h.get("matchId") == asg["matchId"], h
    assert int(h["endedAt"]) == ms_of(asg["assignedAt"]), "endedAt %s, assignedAt %s" % (h["endedAt"], asg["assignedAt"])
    assert_final_layout(rds, testee, ta, h, "assigned", 2, pa, ka, int((time.monotonic() - t0) * 1000))
    assert [e["op"] for _, e in entries_of(rds, testee, ta)] == ["queued"], "an assignment appended a hand-off entry"
    # Cancel of an assigned ticket: returned unchanged (already_assigned).
    r = a.request("cancel", {"ticketId": ta})
    assert r["type"] == "error" and r["data"]["code"] == "already_assigned"
    assert ticket_hash(rds, testee, ta) == h


class Monitor:
    """Redis MONITOR in a thread: every command Redis executes, with its
    source ('lua' for the commands a script ran), in execution order."""

    def __init__(self, rds):
        import threading
        self.lines = []
        self._mon = rds.monitor()
        self._mon.__enter__()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            while not self._stop:
                c = self._mon.next_command()
                self.lines.append((c.get("client_type") == "lua" or c.get("client_address") == "lua",
                                   c["command"]))
        except Exception:
            pass

    def close(self):
        self._stop = True
        try:
            self._mon.connection.disconnect()
        except Exception:
            pass
        self._t.join(5)


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-062", "CHN-020")
def test_assignment_published_in_the_commit_script(testee, rds, conns, queue):
    """CHN-062: each assigned ticket's payload is PUBLISHed by the script
    that commits the assignment, inside it (Redis MONITOR lists a script's
    commands as source 'lua', contiguously after its EVAL/EVALSHA), after the
    write of that ticket's `assigned` state; never by a separate command, so
    no crash of the worker can separate commit and notice."""
    mon = Monitor(rds)
    try:
        a, b = conns(), conns(url=testee.url2 or testee.url)
        ta = a.enqueue_ok(queue)["ticketId"]
        tb = b.enqueue_ok(queue)["ticketId"]
        a.wait_push("match.assigned", ta)
        b.wait_push("match.assigned", tb)
        channel = key(testee, "matchmaking:assigned")
        wait_until(lambda: sum(1 for _, c in mon.lines if c.upper().startswith("PUBLISH ") and channel in c
                               and (ta in c or tb in c)) >= 2, testee.timeout, "both PUBLISHes in MONITOR")
    finally:
        mon.close()
    for t in (ta, tb):
        idx = [i for i, (_, c) in enumerate(mon.lines)
               if c.upper().startswith("PUBLISH " + channel.upper() + " ") and t in c]
        assert len(idx) == 1, "%d PUBLISHes of %s's payload, expected 1: %s" % (
            len(idx), t, [mon.lines[i][1][:120] for i in idx])
        i = idx[0]
        assert mon.lines[i][0], "the payload of %s was published by a client command, not by the " \
            "assignment script: %s" % (t, mon.lines[i][1][:160])
        j = i
        while j > 0 and mon.lines[j - 1][0]:
            j -= 1
        script = [c for _, c in mon.lines[j:i]]
        wrote = [c for c in script if c.upper().startswith("HSET " + key(testee, "mw:ticket:" + t).upper() + " ")
                 and " assigned " in c]
        assert wrote, "the script that published %s's payload did not write its assigned state " \
            "before (its commands: %s)" % (t, [c[:80] for c in script])


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-050", "CHN-080", "CHN-081", "CHN-040", "CHN-005")
def test_foreign_gateway_ticket_is_matched(testee, rds, conns, subs, queue):
    """A ticket created by a foreign gateway through the documented layout
    (hash, sorted sets, hand-off entry) is matched by the worker with one
    created through the testee; the store and the payload say so."""
    assigned = subs("matchmaking:assigned")
    tx, _ = foreign_create(rds, testee, queue, "foreign-player")
    time.sleep(0.05)  # FIFO: the foreign ticket is the older one
    ws = conns()
    ty = ws.enqueue_ok(queue, player="native-player")["ticketId"]
    m = ws.wait_push("match.assigned", ty, timeout=testee.timeout * 2)
    assert [p["playerId"] for p in m["data"]["assignment"]["players"]] == ["foreign-player", "native-player"], \
        ijson.dumps(m)
    p = ijson.loads(assigned.wait(about(tx), "the payload for the foreign gateway's ticket"))
    assert p["envelope"]["data"]["ticketId"] == tx and p["envelope"]["data"]["version"] == 2
    assert p["envelope"]["data"]["assignment"] == m["data"]["assignment"]
    h = ticket_hash(rds, testee, tx)
    assert h["state"] == "assigned" and ijson.loads(h["envelope"]) == p["envelope"], h


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-085", "CHN-050", "CHN-081")
def test_layout1_gateway_ticket_is_matched(testee, rds, conns, queue):
    """CHN-085: a layout-1 instance shares the Redis with the testee. Its
    create writes what layout 1 wrote (the ticket, the sorted sets, the
    hand-off entry, and `mw:counts queued` + 1); the testee's worker matches
    that ticket with a native one, and the testee's own creates leave the
    layout-1 field alone (neither read back as a count to add to nor reset)."""
    rds.hset(key(testee, "mw:counts"), "assigned", 777)
    try:
        layout1_mixed(testee, rds, conns, queue)
    finally:
        rds.hdel(key(testee, "mw:counts"), "assigned")


def layout1_mixed(testee, rds, conns, queue):
    tx, _ = foreign_create(rds, testee, queue, "layout1-player")
    rds.hincrby(key(testee, "mw:counts"), "queued", 1)
    queued_before = counts(rds, testee).get("queued", 0)
    time.sleep(0.05)  # FIFO: the layout-1 ticket is the older one
    ws = conns()
    ty = ws.enqueue_ok(queue, player="layout2-player")["ticketId"]
    m = ws.wait_push("match.assigned", ty, timeout=testee.timeout * 2)
    assert [p["playerId"] for p in m["data"]["assignment"]["players"]] == ["layout1-player", "layout2-player"], \
        ijson.dumps(m)
    h = ticket_hash(rds, testee, tx)
    assert h["state"] == "assigned" and h["version"] == "2", h
    c = counts(rds, testee)
    assert c.get("assigned") == 777, "the layout-1 field mw:counts assigned was changed: %r" % c
    assert c.get("queued", 0) == queued_before, \
        "layout 2 wrote mw:counts queued (%s -> %s)" % (queued_before, c.get("queued"))


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-060", "CHN-061", "MSG-077")
def test_worker_cas_refuses_a_ticket_assigned_elsewhere(testee, rds, conns, queue):
    """A foreign worker assigns ticket A; the testee's worker, which also saw
    A queued, must not assign it again when B arrives: its compare-and-set
    changes nothing of A, and B stays queued until C arrives."""
    a = conns()
    ta = a.enqueue_ok(queue, player="pa")["ticketId"]
    wait_consumed(rds, testee, entries_of(rds, testee, ta)[0][0])  # the worker saw A queued
    res, envs, mid, _ = foreign_assign(rds, testee, [ta], ["pa"])
    assert res == -1
    before = ticket_hash(rds, testee, ta)
    b = conns()
    tb = b.enqueue_ok(queue, player="pb")["ticketId"]
    assert not [m for m in b.quiet(1.0) if m["type"] == "match.assigned"], "B was matched with an assigned ticket"
    assert ticket_hash(rds, testee, ta) == before, "the worker changed a ticket another worker had assigned"
    hb = ticket_hash(rds, testee, tb)
    assert (hb["state"], hb["version"]) == ("queued", "1"), hb
    c = conns()
    tc = c.enqueue_ok(queue, player="pc")["ticketId"]
    m = b.wait_push("match.assigned", tb)
    assert [p["playerId"] for p in m["data"]["assignment"]["players"]] == ["pb", "pc"]
    c.wait_push("match.assigned", tc)
    assert ijson.loads(ticket_hash(rds, testee, ta)["envelope"])["data"]["assignment"]["matchId"] == mid


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-081")
def test_worker_reads_through_group_and_acks(testee, rds, conns, queue):
    stream = key(testee, "mw:tickets")
    tid = conns().enqueue_ok(queue)["ticketId"]
    wait_consumed(rds, testee, entries_of(rds, testee, tid)[0][0])
    names = [c["name"].decode() for c in rds.xinfo_consumers(stream, "workers")]
    assert names, "group 'workers' has no consumer"


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-081", "MSG-077", "MSG-082")
def test_worker_idempotent_on_ticket_id(testee, rds, conns, queue):
    """At-least-once delivery: a second hand-off entry for a queued ticket
    (as a redelivery would bring) neither matches it twice nor makes it or
    others wait."""
    stream = key(testee, "mw:tickets")
    a = conns()
    ta = a.enqueue_ok(queue, player="pa")["ticketId"]
    eid, e = entries_of(rds, testee, ta)[0]
    wait_consumed(rds, testee, eid)
    dup = rds.xadd(stream, e).decode()  # the same fields again
    wait_consumed(rds, testee, dup)
    b = conns()
    tb = b.enqueue_ok(queue, player="pb")["ticketId"]
    m = a.wait_push("match.assigned", ta)
    assert [p["playerId"] for p in m["data"]["assignment"]["players"]] == ["pa", "pb"], ijson.dumps(m)
    b.wait_push("match.assigned", tb)
    c, d = conns(), conns()
    tc = c.enqueue_ok(queue, player="pc")["ticketId"]
    td = d.enqueue_ok(queue, player="pd")["ticketId"]
    m = c.wait_push("match.assigned", tc)
    assert [p["playerId"] for p in m["data"]["assignment"]["players"]] == ["pc", "pd"], ijson.dumps(m)
    d.wait_push("match.assigned", td)
    assert not [x for x in a.quiet(0.3) if x["type"] == "match.assigned"], "A was assigned twice"
    assert ticket_hash(rds, testee, ta)["version"] == "2"


LEASE_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-082", "CHN-083", "CHN-080", "CHN-081")
def test_lease_standby_claim_and_rebuild(testee, rds, conns, queue):
    """The lease decides who consumes. The suite takes it as a foreign
    worker: the testee's worker stands by (renews nothing, reads nothing).
    The suite reads two new entries, acknowledges A's (as if it had handled
    it and died before matching) and leaves B's pending, then releases the
    lease: the testee's worker takes it, claims B's pending entry and
    rebuilds from mw:queue (the only way it can learn of A), so A and B are
    matched."""
    stream, lease = key(testee, "mw:tickets"), key(testee, "mw:worker:lease")
    holder = rds.get(lease)
    assert holder, "no worker holds %s" % lease
    consumers = [c["name"] for c in rds.xinfo_consumers(stream, "workers")]
    assert holder in consumers, "the lease holder %r is not a consumer of group workers %s" % (holder, consumers)
    ttls = []
    for _ in range(7):  # renewed while held (PX 10000, at least every 2 s: CHN-082)
        ttls.append(rds.pttl(lease))
        time.sleep(0.5)
    # Over 3 s of samples a renewal every <= 2 s shows as a PTTL that went up;
    # without one it only goes down. The floor leaves 2 s of scheduling slack
    # on top of the 2 s renewal period (10,000 - 4,000).
    assert all(0 < t <= 10000 for t in ttls) and min(ttls) > 6000, "lease PTTL samples %s: not renewed" % ttls
    assert any(b > a for a, b in zip(ttls, ttls[1:])), "lease PTTL samples %s never went up: not renewed" % ttls
    me = uniq("foreign-worker")
    rds.set(lease, me, px=15000)
    try:
        time.sleep(1.5)  # a read in flight when the lease changed hands ends (BLOCK 1000)
        assert rds.get(lease) == me.encode(), "the testee's worker overwrote a lease another worker held"
        a, b = conns(), conns()
        ta = a.enqueue_ok(queue, player="pa")["ticketId"]
        time.sleep(0.05)
        tb = b.enqueue_ok(queue, player="pb")["ticketId"]
        assert not a.quiet(1.0) and not b.quiet(0.1), "matched while another worker held the lease"
        got = {}
        for _, entries in rds.xreadgroup("workers", me, {stream: ">"}, count=1000) or []:
            for eid, f in entries:
                d = dec(f)
                if d.get("id") in (ta, tb) and d.get("op") == "queued":
                    got[d["id"]] = (eid.decode(), d)
        assert set(got) == {ta, tb}, "the standby worker consumed entries while not holding the lease"
        for t in (ta, tb):
            assert set(got[t][1]) == QUEUED_ENTRY, got[t][1]
        rds.xack(stream, "workers", got[ta][0])
        assert rds.eval(LEASE_RELEASE, 1, lease, me) == 1
        ma = a.wait_push("match.assigned", ta, timeout=testee.timeout + 4)
        mb = b.wait_push("match.assigned", tb, timeout=testee.timeout)
        assert ma["data"]["assignment"] == mb["data"]["assignment"]
        assert sorted(p["playerId"] for p in ma["data"]["assignment"]["players"]) == ["pa", "pb"]
        wait_until(lambda: not rds.xpending_range(stream, "workers", min="-", max="+", count=10, consumername=me),
                   testee.timeout, "the new lease holder claimed and acknowledged the pending entry")
        assert rds.get(lease) not in (None, me.encode()), "no worker took the lease back"
    finally:
        rds.eval(LEASE_RELEASE, 1, lease, me)
        rds.xgroup_delconsumer(stream, "workers", me)


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-073", "CHN-072", "CHN-041", "CHN-080", "CHN-031", "MSG-075", "MSG-076")
def test_sweep_expires_and_forgets(testee, rds, subs, queue):
    needs_timer(testee, "ticketTtlSeconds", testee.decl["ticketTtlSeconds"])
    needs_timer(testee, "assignedTtlSeconds", testee.decl["assignedTtlSeconds"])
    ended = subs("matchmaking:ended")
    player, k = uniq("pl"), uniq("k")
    r = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": player, "idempotencyKey": k})
    assert r.status == 201, r.body
    tid = r.json["ticketId"]
    exp = int(ticket_hash(rds, testee, tid)["expiresAt"])
    wait_until(lambda: ticket_hash(rds, testee, tid).get("state") in FINAL,
               testee.decl["ticketTtlSeconds"] + testee.timeout, "the sweep to end the ticket")
    t_end = time.monotonic()
    h = ticket_hash(rds, testee, tid)
    assert int(h["endedAt"]) >= exp, "expired before expiresAt"
    assert_final_layout(rds, testee, tid, h, "expired", 2, player, k, 500)
    es = entries_of(rds, testee, tid)
    assert [e for _, e in es][1:] == [{"op": "removed", "id": tid, "state": "expired", "version": "2"}], es
    n = ijson.loads(ended.wait(about(tid), "the ended notice of an expiry"))
    assert (n["state"], n["version"]) == ("expired", 2), n
    # Take the Redis TTL (the backstop) away, so that only the sweep can
    # forget the ticket: hash, idempotency key and deadline member.
    assert rds.persist(key(testee, "mw:ticket:" + tid)) and rds.persist(idem_key(testee, player, k))
    wait_until(lambda: not rds.exists(key(testee, "mw:ticket:" + tid)),
               testee.decl["assignedTtlSeconds"] + testee.timeout, "the sweep to forget the ticket")
    assert time.monotonic() - t_end >= testee.decl["assignedTtlSeconds"] - 1.5, "forgotten before the retention"
    assert not rds.exists(idem_key(testee, player, k)), "the idempotency key outlived its ticket"
    assert zscore(rds, testee, "mw:deadlines", tid) is None, "a forgotten ticket kept its deadline member"


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-073", "CHN-080", "CHN-031", "MSG-074")
def test_sweep_grace_cancel(testee, rds, conns, subs, queue):
    needs_timer(testee, "graceSeconds", testee.decl["graceSeconds"])
    ended = subs("matchmaking:ended")
    ws = conns()
    tid = ws.enqueue_ok(queue)["ticketId"]
    ws.close()
    wait_until(lambda: ticket_hash(rds, testee, tid).get("state") in FINAL,
               testee.decl["graceSeconds"] + testee.timeout, "the grace rule to end the ticket")
    h = ticket_hash(rds, testee, tid)
    assert_final_layout(rds, testee, tid, h, "cancelled", 2)
    assert [e for _, e in entries_of(rds, testee, tid)][1:] == [
        {"op": "removed", "id": tid, "state": "cancelled", "version": "2"}]
    n = ijson.loads(ended.wait(about(tid), "the ended notice of a grace cancel"))
    assert (n["state"], n["version"]) == ("cancelled", 2), n


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-073", "CHN-072")
def test_sweep_rescores_and_drops_orphans(testee, rds, queue):
    """A queued ticket whose deadline member is earlier than its real next
    deadline is re-scored and stays queued; a member without a hash is
    removed."""
    dl = key(testee, "mw:deadlines")
    r = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": uniq("pl")})
    tid = r.json["ticketId"]
    exp = int(ticket_hash(rds, testee, tid)["expiresAt"])
    orphan = str(uuid.uuid4())
    rds.zadd(dl, {tid: now_ms() - 1000, orphan: now_ms() - 1000})
    wait_until(lambda: zscore(rds, testee, "mw:deadlines", orphan) is None, testee.timeout,
               "the sweep to remove a member without a hash")
    wait_until(lambda: zscore(rds, testee, "mw:deadlines", tid) == exp, testee.timeout,
               "the sweep to re-score the queued ticket to its expiresAt")
    h = ticket_hash(rds, testee, tid)
    assert (h["state"], h["version"]) == ("queued", "1"), h


@pytest.mark.profile("multi")
@pytest.mark.req("CHN-074", "CHN-071")
def test_watcher_counts_across_instances(testee, rds, conns, queue):
    """Watchers are counted in Redis for all instances together; counts left
    by an instance that died without detaching keep grace away, and the
    ticket ends by expiry."""
    needs_timer(testee, "ticketTtlSeconds", testee.decl["ticketTtlSeconds"])
    if testee.decl["graceSeconds"] >= testee.decl["ticketTtlSeconds"]:
        pytest.skip("needs graceSeconds < ticketTtlSeconds to tell grace from expiry")
    a, w = conns(), conns(url=testee.url2 or testee.url)
    tid = a.enqueue_ok(queue)["ticketId"]
    assert w.request("watch", {"ticketId": tid})["type"] == "watching"
    wait_until(lambda: ticket_hash(rds, testee, tid).get("watchers") == "2", testee.timeout,
               "watchers 2 (one on each gateway)")
    # A foreign gateway attached (CHN-071) and died without detaching.
    rds.hincrby(key(testee, "mw:ticket:" + tid), "watchers", 1)
    a.close()
    w.close()
    wait_until(lambda: ticket_hash(rds, testee, tid).get("watchers") == "1", testee.timeout, "watchers 1")
    assert ticket_hash(rds, testee, tid)["graceAt"] == "0", "grace began while a watcher count remained"
    wait_until(lambda: ticket_hash(rds, testee, tid).get("state") in FINAL,
               testee.decl["ticketTtlSeconds"] + testee.timeout, "the ticket to end")
    h = ticket_hash(rds, testee, tid)
    assert h["state"] == "expired", "ended %s, not by expiry: %s" % (h["state"], h)
    assert int(h["endedAt"]) >= int(h["expiresAt"])

