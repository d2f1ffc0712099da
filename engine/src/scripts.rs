//! The Lua scripts. Each one declares every key it touches in KEYS (Redis
//! Cluster), takes its clock from the server (`TIME`), and is one atomic step.

/// Lua: `expect(kind, key)` fails the script, before its first write, when
/// `key` holds a value of another type than `kind` ('stream', 'zset',
/// 'hash' or 'string'), with a `WRONGTYPE` error that names the key (Redis's
/// own error does not). Any other error (an ACL refusal) is raised as is.
macro_rules! lua_expect {
    () => {
        r#"
local function expect(kind, key)
  local r
  if kind == 'stream' then r = redis.pcall('XLEN', key)
  elseif kind == 'zset' then r = redis.pcall('ZSCORE', key, '')
  elseif kind == 'hash' then r = redis.pcall('HGET', key, '')
  else r = redis.pcall('GET', key) end
  if type(r) == 'table' and r.err then
    if string.sub(r.err, 1, 9) == 'WRONGTYPE' then
      error({err = 'WRONGTYPE the key ' .. key .. ' holds another type of value, not the ' .. kind ..
        ' ChasquiMQ keeps there (another program wrote it); nothing was changed: rename or delete that key'})
    end
    error(r)
  end
end
"#
    };
}
pub(crate) use lua_expect;

/// Lua: take or keep the leader lock `KEYS[1]` for holder `ARGV[1]`
/// (`SET ... EX ARGV[2]` when free, `EXPIRE` when ours); a script that does
/// not hold it returns `{0, 0, -1}` at once.
macro_rules! lua_leader_lock {
    () => {
        r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
elseif cur == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
else
  return {0, 0, -1}
end
"#
    };
}
pub(crate) use lua_leader_lock;

/// Lua: `now`, the Redis server clock in epoch ms.
/// Lua: `room(stream, cap, need, gate)`, the cap check of an add. With
/// `need > 0`: false (and, given a gate key, sets it) when the stream plus
/// `need` entries would pass `cap`. With `need < 0` (a later call of a
/// multi-call bulk): false when the bulk's gate is set. XLEN is O(1) and
/// fails on a key of the wrong type before anything is written.
macro_rules! lua_room {
    () => {
        r#"
local function room(stream, cap, need, gate)
  if need > 0 then
    if redis.call('XLEN', stream) + need > cap then
      if gate then redis.call('SET', gate, '1', 'PX', 60000) end
      return false
    end
  elseif gate and redis.call('GET', gate) then
    return false
  end
  return true
end
"#
    };
}
pub(crate) use lua_room;

macro_rules! lua_server_now {
    () => {
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}
pub(crate) use lua_server_now;

/// Settles a batch: `active` events, acks (+ `completed` events and
/// results), retries into `delayed`, DLQ routing, and the `drained` event,
/// all in one round trip.
///
/// KEYS: stream, delayed, dlq, events, then result keys.
/// ARGV: group, events(0|1), xackdel(0|1), dlq_maxlen, events_maxlen,
///   result_ttl_secs, then sections, each a count followed by records:
///   active   (job_id, name, attempt)
///   ok       (stream_id, job_id, name, attempt, duration_us, flags, result),
///            sorted by stream id; flags = result_key_index * 2 + (1 when
///            the run's `active` event goes out just before its `completed`)
///   retry    (stream_id, job_id, name, attempt, duration_us, reason, member, backoff_ms)
///   dlq      (stream_id, job_id, name, attempt, duration_us|'', reason, detail, d, failed_reason|'')
///   drained  (0|1)
/// Returns the number of entries acknowledged.
pub const SETTLE: &str = concat!(
    lua_expect!(),
    r#"
local stream, delayed, dlq, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group = ARGV[1]
local ev = ARGV[2] == '1'
local ackdel = ARGV[3] == '1'
local dlqmax, evmax, ttl = ARGV[4], ARGV[5], ARGV[6]

-- Every key a section writes is type-checked before the first write.
do
  local at = 7
  at = at + 1 + 3 * tonumber(ARGV[at])
  at = at + 1 + 7 * tonumber(ARGV[at])
  local retries = tonumber(ARGV[at])
  at = at + 1 + 8 * retries
  local dead = tonumber(ARGV[at])
  expect('stream', stream)
  if ev then expect('stream', events) end
  if retries > 0 then expect('zset', delayed) end
  if dead > 0 then expect('stream', dlq) end
end
"#,
    lua_server_now!(),
    r#"local ts = string.format('%.0f', now)

-- Events are written without a per-entry MAXLEN; one XTRIM at the end
-- keeps the cap (the cap is approximate either way). The hot kinds are
-- plain calls (no table, no unpack): they run once per job.
local function emit(kind, id, name, extra)
  if not ev then return end
  local a = {'XADD', events, '*', 'e', kind, 'id', id, 'ts', ts}
  if name ~= '' then a[#a + 1] = 'n'; a[#a + 1] = name end
  for i = 1, #extra do a[#a + 1] = extra[i] end
  redis.call(unpack(a))
end
local function emit2(kind, id, name, k1, v1, k2, v2)
  if name == '' then
    if k2 then
      redis.call('XADD', events, '*', 'e', kind, 'id', id, 'ts', ts, k1, v1, k2, v2)
    else
      redis.call('XADD', events, '*', 'e', kind, 'id', id, 'ts', ts, k1, v1)
    end
  elseif k2 then
    redis.call('XADD', events, '*', 'e', kind, 'id', id, 'ts', ts, 'n', name, k1, v1, k2, v2)
  else
    redis.call('XADD', events, '*', 'e', kind, 'id', id, 'ts', ts, 'n', name, k1, v1)
  end
end

-- True when entry `id` is still pending for this group: not settled by
-- anyone else, so a retried flush never routes a job twice.
local function pending1(id)
  return #redis.call('XPENDING', stream, group, id, id, 1) == 1
end

-- Acks and deletes one entry.
local function ack1(id)
  if ackdel then
    local r = redis.call('XACKDEL', stream, group, 'IDS', 1, id)
    if r[1] == 1 or r[1] == 2 then return 1 end
    return 0
  end
  local n = redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  return n
end

-- A stream id as two exact numbers, or nothing past 2^53.
local function idnum(s)
  local ms, seq = string.match(s, '^(%d+)%-(%d+)$')
  ms, seq = tonumber(ms), tonumber(seq)
  if ms and seq and ms < 2^53 and seq < 2^53 then return ms, seq end
end

-- Deletes the acked entries `ids` (sorted ascending). Every entry older
-- than the group's oldest pending one was delivered (reads hand out ids in
-- order) and acked, so one exact MINID trim deletes those, a pass over
-- whole nodes, where XDEL seeks and scans a node for each id. The ids at
-- or past the oldest pending one are deleted one by one.
local function delete_acked(ids)
  local n = #ids
  local from = 1
  local lastms, lastseq = idnum(ids[n])
  if lastms then
    local oldest = redis.call('XPENDING', stream, group)[2]
    local cut
    if oldest then
      local pms, pseq = idnum(oldest)
      if pms then
        local lo, hi = 1, n + 1
        while lo < hi do
          local mid = math.floor((lo + hi) / 2)
          local ms, seq = idnum(ids[mid])
          if ms and (ms < pms or (ms == pms and seq < pseq)) then lo = mid + 1 else hi = mid end
        end
        from, cut = lo, oldest
      end
    else
      from, cut = n + 1, string.format('%.0f-%.0f', lastms, lastseq + 1)
    end
    if from > 1 then redis.call('XTRIM', stream, 'MINID', cut) end
  end
  for s = from, n, 500 do
    redis.call('XDEL', stream, unpack(ids, s, math.min(s + 499, n)))
  end
end

local i = 7
local acked = 0

local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if ev then emit2('active', ARGV[i], ARGV[i + 1], 'attempt', ARGV[i + 2]) end
  i = i + 3
end

n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  local ids = {}
  for k = 0, n - 1 do ids[k + 1] = ARGV[i + k * 7] end
  -- XACK + delete_acked on every server: cheaper than XACKDEL, which
  -- seeks each id like XDEL.
  local newly = 0
  for s = 1, n, 500 do
    newly = newly + redis.call('XACK', stream, group, unpack(ids, s, math.min(s + 499, n)))
  end
  acked = acked + newly
  delete_acked(ids)
  -- None was pending: this flush already ran (retried after a lost reply)
  -- or others settled these entries; their events and results are written.
  if newly == 0 then
    i = i + n * 7
  else
    for _ = 1, n do
      local jid, name, att, dur, f = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
      local rk = math.floor(f / 2)
      if rk > 0 then redis.call('SET', KEYS[4 + rk], ARGV[i + 6], 'EX', ttl) end
      if ev then
        if f % 2 == 1 then emit2('active', jid, name, 'attempt', att) end
        emit2('completed', jid, name, 'attempt', att, 'duration_us', dur)
      end
      i = i + 7
    end
  end
end

n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local sid, jid, name, att, dur, reason, member, backoff =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  -- The retry is written before the entry is acked and deleted, so a
  -- failure in between leaves the job pending, never nowhere.
  if pending1(sid) then
    redis.call('ZADD', delayed, now + tonumber(backoff), member)
    ack1(sid)
    acked = acked + 1
    emit('failed', jid, name, {'attempt', att, 'reason', reason, 'duration_us', dur})
    emit('retry-scheduled', jid, name, {'attempt', tostring(tonumber(att) + 1), 'backoff_ms', backoff})
  end
  i = i + 8
end

n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local sid, jid, name, att, dur, reason, detail, d, freason =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  if pending1(sid) then
    local a = {'XADD', dlq, 'MAXLEN', '~', dlqmax, '*', 'd', d}
    if name ~= '' then a[#a + 1] = 'n'; a[#a + 1] = name end
    a[#a + 1] = 'source_id'; a[#a + 1] = sid
    a[#a + 1] = 'reason'; a[#a + 1] = reason
    if detail ~= '' then a[#a + 1] = 'detail'; a[#a + 1] = detail end
    redis.call(unpack(a))
    ack1(sid)
    acked = acked + 1
    if dur ~= '' then
      emit('failed', jid, name, {'attempt', att, 'reason', freason, 'duration_us', dur})
    end
    emit('dlq', jid, name, {'attempt', att, 'reason', reason})
  end
  i = i + 9
end

if ARGV[i] == '1' then emit('drained', '', '', {}) end
if ev then redis.call('XTRIM', events, 'MAXLEN', '~', evmax) end
return acked
"#
);

/// Leader election plus promotion of due delayed members, one round trip a tick.
/// KEYS: lock, delayed, stream, events.
/// ARGV: holder, lock_ttl_secs, batch, stream_maxlen, events(0|1), events_maxlen.
/// Returns {is_leader, promoted, ms_until_next_due or -1, held (1 when the
/// stream reached the cap, ARGV[4], with due members left)}.
pub const PROMOTE: &str = concat!(
    lua_expect!(),
    "expect('string', KEYS[1]); expect('zset', KEYS[2]); expect('stream', KEYS[3])\n",
    "if ARGV[5] == '1' then expect('stream', KEYS[4]) end\n",
    lua_leader_lock!(),
    lua_server_now!(),
    r#"local ts = string.format('%.0f', now)
local ev = ARGV[5] == '1'

-- The job id is the envelope's first element: a msgpack str.
local function envelope_id(env)
  local p = 1
  local b = string.byte(env, p)
  if not b then return '' end
  if b >= 0x90 and b <= 0x9f then p = p + 1
  elseif b == 0xdc then p = p + 3
  elseif b == 0xdd then p = p + 5
  else return '' end
  b = string.byte(env, p)
  if not b then return '' end
  local len
  if b >= 0xa0 and b <= 0xbf then len = b - 0xa0; p = p + 1
  elseif b == 0xd9 then len = string.byte(env, p + 1) or 0; p = p + 2
  elseif b == 0xda then len = (string.byte(env, p + 1) or 0) * 256 + (string.byte(env, p + 2) or 0); p = p + 3
  else return '' end
  return string.sub(env, p, p + len - 1)
end

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
-- Never past the cap: what does not fit stays delayed for a later tick.
local room = tonumber(ARGV[4]) - redis.call('XLEN', KEYS[3])
local moved = 0
local held = 0
for _, m in ipairs(due) do
  if moved >= room then held = 1; break end
  local len = #m >= 4 and struct.unpack('<I4', m)
  if len and 4 + len <= #m then
    local name = string.sub(m, 5, 4 + len)
    local env = string.sub(m, 5 + len)
    -- Into the stream first, out of the delayed set after.
    local a = {'XADD', KEYS[3], '*', 'd', env}
    if len > 0 then a[#a + 1] = 'n'; a[#a + 1] = name end
    redis.call(unpack(a))
    redis.call('ZREM', KEYS[2], m)
    moved = moved + 1
    if ev then
      local e = {'XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'e', 'waiting', 'id', envelope_id(env), 'ts', ts}
      if len > 0 then e[#e + 1] = 'n'; e[#e + 1] = name end
      redis.call(unpack(e))
    end
  else
    -- Not a member ChasquiMQ wrote (shorter than its own header).
    redis.call('ZREM', KEYS[2], m)
  end
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then
  wait = math.max(0, tonumber(nxt[2]) - now)
end
return {1, moved, wait, held}
"#
);

/// Compare-and-delete of a leader lock. KEYS: lock. ARGV: holder.
pub const RELEASE_LOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// DLQ replay: per entry still in the DLQ, add it to the stream, then
/// delete it from the DLQ; concurrent replays never duplicate.
/// The stream is never filled past its cap: replay stops there.
/// KEYS: dlq, stream. ARGV: stream cap, then (dlq_id, d, name) triples.
/// Returns {replayed, full (1 when it stopped at the cap)}.
pub const REPLAY: &str = concat!(
    lua_expect!(),
    r#"
expect('stream', KEYS[1]); expect('stream', KEYS[2])
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[2])
local count = 0
for i = 2, #ARGV, 3 do
  if count >= room then return {count, 1} end
  -- Still in the DLQ (a concurrent replay may have taken it): written to
  -- the stream first, removed from the DLQ last.
  if #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 1 then
    local a = {'XADD', KEYS[2], '*', 'd', ARGV[i + 1]}
    if ARGV[i + 2] ~= '' then a[#a + 1] = 'n'; a[#a + 1] = ARGV[i + 2] end
    redis.call(unpack(a))
    redis.call('XDEL', KEYS[1], ARGV[i])
    count = count + 1
  end
end
return {count, 0}
"#
);
