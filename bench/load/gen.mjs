// Load generator of `make bench`: drives one server over WebSocket (Phoenix V2 JSON arrays) and
// prints one JSON object with its figures on stdout. bench/bench_compare.py runs it pinned to a
// core of its own, the server pinned to another, so a figure can be told from the generator's
// limit by the two processes' CPU, which it samples from /proc over each measurement window.
//
//   node bench/load/gen.mjs --url ws://127.0.0.1:4000/socket/websocket --server-pid PID \
//       --workload echo|relay|churn|conns|fanout [options below]
//
// Frames are built as strings and replies recognised by a byte search rather than parsed: the
// generator has one core, and what it spends per message is what it cannot offer the server.
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const DEFAULTS = {
  url: 'ws://127.0.0.1:4000/socket/websocket',
  'server-pid': '0',
  'clk-tck': '100',
  workload: 'echo',
  warmup: '1', // seconds of load before a window opens
  duration: '3', // seconds a window lasts
  drain: '1', // seconds a relay step waits for late deliveries
  // echo
  conns: '100',
  windows: '1,10', // pushes in flight per connection, one window each
  // relay
  rooms: '500',
  rates: '2000,5000,10000,15000,20000,30000',
  'p99-ms': '50',
  'min-delivered': '0.95',
  'sdp-bytes': '1000',
  // churn
  loops: '50',
  cycles: '0', // exactly this many cycles, then stop (0: as many as the window allows)
  // conns (with --conns) and fanout: connects and joins in flight
  'in-flight': '100',
  // conns: hold the joined connections, then idle on; heartbeats all along
  hold: '5',
  idle: '15',
  'heartbeat-s': '10',
  // fanout
  sizes: '2000,5000',
  broadcasts: '20',
  'spacing-ms': '200',
  'join-budget': '300', // seconds for all the joins of the growing room
  'join-until': 'presence_state', // or `reply`, for a server that pushes no presence
};

function parseArgs(argv) {
  const out = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in DEFAULTS)) throw new Error(`unknown option ${argv[i]}`);
    out[key] = argv[++i];
  }
  return out;
}

const A = parseArgs(process.argv.slice(2));
const SERVER_PID = Number(A['server-pid']);
const CLK_TCK = Number(A['clk-tck']);
const NONCE = randomUUID().slice(0, 8); // user ids differ between runs against one server
const now = () => performance.now(); // milliseconds, monotonic
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- CPU and windows ---------------------------------------------------------------------------
function cpuTicks(pid) {
  if (!pid) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, every thread
}

function mark() {
  return { t: now(), srv: cpuTicks(SERVER_PID), gen: cpuTicks(process.pid) };
}

// CPU in ticks, from the run time in ns of every live thread (/proc/<pid>/task/*/schedstat):
// a fan-out burst lasts tens of ms, a few ticks of /proc/<pid>/stat.
function cpuTicksFine(pid) {
  if (!pid) return 0;
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // the thread ended since the listing
    }
  }
  return (ns / 1e9) * CLK_TCK;
}

function fineMark() {
  return { t: now(), srv: cpuTicksFine(SERVER_PID), gen: cpuTicksFine(process.pid) };
}

// Warm up, then count for the window: `count(true)` at its start, `count(false)` at its end;
// the marks taken at either end.
async function measured(count) {
  await sleep(Number(A.warmup) * 1000);
  const a = mark();
  count(true);
  await sleep(Number(A.duration) * 1000);
  count(false);
  return [a, mark()];
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m ? Number(m[1]) : null;
}

// One socket is one file descriptor: stop before the first refused connect rather than after.
function needSockets(n) {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'latin1'));
  const limit = !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
  if (limit < n + 100) {
    process.stderr.write(
      `gen.mjs: ${n} connections need an open-files limit of at least ${n + 100}, ` +
        `this process has ${limit}: raise it (ulimit -n) or ask for fewer\n`,
    );
    process.exit(2);
  }
}

function span(a, b) {
  return {
    wall_s: (b.t - a.t) / 1000,
    srv_cpu_s: (b.srv - a.srv) / CLK_TCK,
    gen_cpu_s: (b.gen - a.gen) / CLK_TCK,
  };
}

// Log-bucketed latencies (1 % wide buckets from 1 µs): percentiles of millions of samples with
// no sorting and a fixed few KB.
class Hist {
  constructor() {
    this.counts = new Uint32Array(2600);
    this.n = 0;
  }
  add(ms) {
    const us = ms * 1000;
    this.counts[us < 1 ? 0 : Math.min(2599, Math.floor(Math.log(us) * 100))]++;
    this.n++;
  }
  q(p) {
    if (!this.n) return null;
    const want = Math.max(1, Math.ceil(p * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= want) return Math.exp((i + 1) / 100) / 1000;
    }
    return null;
  }
}

// Every timed frame carries the instant it was sent; echo replies and relayed messages bring it
// back, so a round trip needs no table of refs.
const STAMP = Buffer.from('"bench_t":');
function stampOf(buf) {
  const i = buf.indexOf(STAMP);
  return i < 0 ? -1 : parseFloat(buf.toString('latin1', i + STAMP.length, i + STAMP.length + 24));
}
const ERROR = Buffer.from('"status":"error"');

// The event of a V2 frame comes before its payload, so it is found in the frame's head.
const HEAD = 160;
const inHead = (buf, needle) => buf.subarray(0, HEAD).indexOf(needle) >= 0;
const REPLY = Buffer.from('","phx_reply",');
const isReply = (buf) => inHead(buf, REPLY);

// -- connections -------------------------------------------------------------------------------
class Conn {
  constructor(ws, user) {
    this.ws = ws;
    this.user = user;
    this.ref = 1;
    this.waiting = new Map(); // ref -> resolve, while a join or leave is awaited
    this.onFrame = null;
    this.closed = new Promise((resolve) => ws.once('close', resolve));
    ws.on('message', (data) => {
      // Only a reply is parsed: a large room's presence frames would cost the most to parse.
      if (this.waiting.size && isReply(data)) {
        const msg = JSON.parse(data.toString());
        const resolve = msg[3] === 'phx_reply' && this.waiting.get(msg[1]);
        if (resolve) {
          this.waiting.delete(msg[1]);
          resolve(msg[4]);
          return;
        }
      }
      if (this.onFrame) this.onFrame(data);
    });
  }

  call(joinRef, topic, event, payload = {}) {
    const ref = String(++this.ref);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${event} in 10 s`)), 10000);
      this.waiting.set(ref, (reply) => {
        clearTimeout(timer);
        if (reply.status === 'ok') resolve(reply.response);
        else reject(new Error(`${event} refused: ${JSON.stringify(reply.response)}`));
      });
      this.ws.send(JSON.stringify([joinRef, ref, topic, event, payload]));
    });
  }

  async close() {
    this.ws.close(1000);
    const timer = setTimeout(() => this.ws.terminate(), 5000);
    await this.closed;
    clearTimeout(timer);
  }
}

function connect(user) {
  const url = `${A.url}?vsn=2.0.0&token=${encodeURIComponent(user)}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      maxPayload: 64 * 1024 * 1024,
      // An all-zero mask lets ws skip masking: legal on the wire, and generator CPU saved.
      generateMask: (mask) => mask.fill(0),
    });
    ws.once('open', () => {
      ws.removeListener('error', reject);
      ws.on('error', () => {}); // a reset at the end of a run; 'close' follows
      resolve(new Conn(ws, user));
    });
    ws.once('error', reject);
  });
}

// fn(i) for i < n, at most `limit` at a time.
async function pool(n, limit, fn) {
  const out = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, limit) }, worker));
  return out;
}

async function closeAll(conns) {
  await pool(conns.length, 200, (i) => conns[i].close());
}

// -- echo: closed loop, W pushes in flight per connection --------------------------------------
async function echo() {
  const n = Number(A.conns);
  const conns = await pool(n, 50, async (i) => {
    const c = await connect(`echo-${NONCE}-${i}`);
    c.topic = `echo:${randomUUID()}`;
    await c.call('1', c.topic, 'phx_join');
    return c;
  });
  const windows = [];
  for (const W of A.windows.split(',').map(Number)) windows.push(await echoWindow(conns, W));
  await closeAll(conns);
  return { workload: 'echo', conns: n, windows };
}

async function echoWindow(conns, W) {
  const hist = new Hist();
  let running = true;
  let counting = false;
  let replies = 0;
  let errors = 0;
  let outstanding = 0;
  const push = (c) => {
    outstanding++;
    c.ws.send(`["1","${++c.ref}","${c.topic}","ping",{"bench_t":${now().toFixed(3)},"body":"hello"}]`);
  };
  for (const c of conns) {
    c.onFrame = (data) => {
      const sent = stampOf(data);
      if (sent < 0) return; // not a reply to a timed push
      outstanding--;
      if (data.includes(ERROR)) errors++;
      else if (counting) {
        replies++;
        hist.add(now() - sent);
      }
      if (running) push(c);
    };
    for (let k = 0; k < W; k++) push(c);
  }
  const [a, b] = await measured((on) => { counting = on; });
  running = false;
  for (let waited = 0; outstanding > 0 && waited < 5000; waited += 20) await sleep(20);
  for (const c of conns) c.onFrame = null;
  return { W, replies, errors, p50_ms: hist.q(0.5), p99_ms: hist.q(0.99), ...span(a, b) };
}

// -- relay: rooms of two, offers with `to` the other peer, open loop at stepped rates ----------
function sdp(bytes) {
  const line = 'a=candidate:1 1 udp 2122260223 192.168.1.10 54321 typ host generation 0\r\n';
  return ('v=0\r\n' + line.repeat(Math.ceil(bytes / line.length))).slice(0, bytes);
}

async function relay() {
  const rooms = Number(A.rooms);
  const body = JSON.stringify(sdp(Number(A['sdp-bytes'])));
  const conns = await pool(rooms * 2, 50, async (i) => {
    const room = Math.floor(i / 2);
    const c = await connect(`r${room}${i % 2 ? 'b' : 'a'}-${NONCE}`);
    c.peer = `r${room}${i % 2 ? 'a' : 'b'}-${NONCE}`;
    return c;
  });
  // Both peers of a room are members before either sends: `to` names a present member.
  await pool(rooms, 50, async (r) => {
    const topic = `room:${randomUUID()}`;
    for (const c of [conns[2 * r], conns[2 * r + 1]]) {
      c.topic = topic;
      await c.call('1', topic, 'phx_join');
    }
  });
  for (const c of conns) {
    c.head = `","${c.topic}","offer",{"to":"${c.peer}","sdp":${body},"bench_t":`;
  }
  await sleep(500);
  const steps = [];
  const p99Limit = Number(A['p99-ms']);
  const minDelivered = Number(A['min-delivered']);
  for (const rate of A.rates.split(',').map(Number)) {
    const step = await relayStep(conns, rate);
    step.pass = step.p99_ms !== null && step.p99_ms < p99Limit && step.delivered_frac >= minDelivered;
    steps.push(step);
    if (!step.pass) break; // past saturation: higher steps only queue more
    await sleep(500);
  }
  await closeAll(conns);
  return { workload: 'relay', rooms, steps };
}

async function relayStep(conns, rate) {
  const hist = new Hist();
  const lag = new Hist();
  let winStart = Infinity;
  let winEnd = Infinity;
  let received = 0;
  let errors = 0;
  for (const c of conns) {
    c.onFrame = (data) => {
      const sent = stampOf(data);
      if (sent < 0) {
        if (data.includes(ERROR)) errors++;
        return; // a push reply (the gateway answers each offer) or presence
      }
      if (sent >= winStart && sent < winEnd) {
        received++;
        hist.add(now() - sent);
      }
    };
  }
  const perMs = rate / 1000;
  const t0 = now();
  const warmEnd = t0 + Number(A.warmup) * 1000;
  const stop = warmEnd + Number(A.duration) * 1000;
  let sent = 0;
  let sentInWindow = 0;
  let next = 0;
  let a = null;
  // Each tick sends what the schedule owes by now, so a late timer or a slow tick is caught up
  // rather than lowering the offered rate; how late shows as the send lag.
  for (let t = now(); t < stop; t = now()) {
    if (a === null && t >= warmEnd) {
      a = mark();
      winStart = a.t;
    }
    const due = Math.floor((t - t0) * perMs);
    while (sent < due) {
      const c = conns[next];
      next = next + 1 === conns.length ? 0 : next + 1;
      const ts = now();
      c.ws.send(`["1","${++c.ref}${c.head}${ts.toFixed(3)}}]`);
      lag.add(ts - (t0 + sent / perMs));
      sent++;
      if (ts >= winStart) sentInWindow++;
    }
    await sleep(1);
  }
  const b = mark();
  winEnd = b.t;
  // Late deliveries of the window still count, until the drain ends.
  const drainEnd = now() + Number(A.drain) * 1000;
  while (received < sentInWindow && now() < drainEnd) await sleep(20);
  for (const c of conns) c.onFrame = null;
  const window = span(a, b);
  return {
    offered: rate,
    sent: sentInWindow,
    received,
    errors,
    delivered_frac: received / (rate * window.wall_s),
    p50_ms: hist.q(0.5),
    p99_ms: hist.q(0.99),
    send_lag_p99_ms: lag.q(0.99),
    ...window,
  };
}

// -- churn: connect, join a new room, leave, close; N loops at once ----------------------------
async function churn() {
  const loops = Number(A.loops);
  const total = Number(A.cycles);
  if (total > 0) return churnCount(loops, total);
  const hist = new Hist();
  let running = true;
  let counting = false;
  let cycles = 0;
  let errors = 0;
  let seq = 0;
  const firstErrors = new Set();
  const loop = async (k) => {
    while (running) {
      const started = now();
      let c = null;
      try {
        c = await connect(`churn-${NONCE}-${k}-${seq++}`);
        const topic = `room:${randomUUID()}`;
        await c.call('1', topic, 'phx_join');
        await c.call('1', topic, 'phx_leave');
        await c.close();
        if (counting) {
          cycles++;
          hist.add(now() - started);
        }
      } catch (err) {
        errors++;
        if (firstErrors.size < 3) firstErrors.add(String(err.message || err));
        if (c) c.ws.terminate();
        await sleep(10);
      }
    }
  };
  const done = Promise.all(Array.from({ length: loops }, (_, k) => loop(k)));
  const [a, b] = await measured((on) => { counting = on; });
  running = false;
  await done;
  return {
    workload: 'churn',
    loops,
    cycles,
    errors,
    first_errors: [...firstErrors],
    p50_ms: hist.q(0.5),
    p99_ms: hist.q(0.99),
    ...span(a, b),
  };
}

// Exactly `total` cycles by `loops` loops, errors included: what an instruction count divides by
// (bench/bench_instructions.py), since the server is idle before the first and after the last.
async function churnCount(loops, total) {
  let started = 0;
  let cycles = 0;
  let errors = 0;
  const firstErrors = new Set();
  const loop = async (k) => {
    while (started < total) {
      started++;
      let c = null;
      try {
        c = await connect(`churn-${NONCE}-${k}-${started}`);
        const topic = `room:${randomUUID()}`;
        await c.call('1', topic, 'phx_join');
        await c.call('1', topic, 'phx_leave');
        await c.close();
        cycles++;
      } catch (err) {
        errors++;
        if (firstErrors.size < 3) firstErrors.add(String(err.message || err));
        if (c) c.ws.terminate();
      }
    }
  };
  const a = mark();
  await Promise.all(Array.from({ length: loops }, (_, k) => loop(k)));
  return { workload: 'churn', loops, cycles, errors, first_errors: [...firstErrors], ...span(a, mark()) };
}

// -- conns: N joined connections held, with heartbeats; the server's RSS per connection -------
async function conns() {
  const n = Number(A.conns);
  needSockets(n);
  let errors = 0;
  const firstErrors = new Set();
  const rssBefore = rssKb(SERVER_PID);
  const a = mark();
  const opened = await pool(n, Number(A['in-flight']), async (i) => {
    let c = null;
    try {
      c = await connect(`conn-${NONCE}-${i}`);
      await c.call('1', `room:${randomUUID()}`, 'phx_join');
      return c;
    } catch (err) {
      errors++;
      if (firstErrors.size < 3) firstErrors.add(String(err.message || err));
      if (c) c.ws.terminate();
      return null;
    }
  });
  const b = mark();
  const held = opened.filter((c) => c !== null);
  const reply = Buffer.from('"phoenix","phx_reply"');
  let answered = 0;
  for (const c of held) {
    c.onFrame = (data) => {
      if (inHead(data, reply) && !data.includes(ERROR)) answered++;
    };
  }
  const beats = heartbeats(held);
  await sleep(Number(A.hold) * 1000);
  const rssHeld = rssKb(SERVER_PID);
  const c = mark();
  await sleep(Number(A.idle) * 1000);
  const rssIdle = rssKb(SERVER_PID);
  const d = mark();
  const sent = beats.stop();
  for (let waited = 0; answered < sent && waited < 3000; waited += 50) await sleep(50);
  await closeAll(held);
  return {
    workload: 'conns',
    conns: n,
    joined: held.length,
    errors,
    first_errors: [...firstErrors],
    rss_before_kb: rssBefore,
    rss_held_kb: rssHeld,
    rss_idle_kb: rssIdle,
    held_s: (c.t - b.t) / 1000,
    idle_s: (d.t - c.t) / 1000,
    heartbeats_sent: sent,
    heartbeats_answered: answered,
    open: span(a, b),
    hold: span(b, d),
  };
}

// A heartbeat on every connection of `conns` (which may grow) each `heartbeat-s`, spread
// evenly over the period, as phoenix.js does; unless paused. stop() returns how many were sent.
function heartbeats(conns) {
  const tickMs = 100;
  const periodMs = Number(A['heartbeat-s']) * 1000;
  const beats = { paused: false, stop: () => { clearInterval(timer); return sent; } };
  let sent = 0;
  let next = 0;
  let owed = 0;
  const timer = setInterval(() => {
    owed = beats.paused ? 0 : owed + (conns.length * tickMs) / periodMs;
    for (; owed >= 1; owed--) {
      next = next < conns.length ? next : 0;
      const c = conns[next++];
      c.ws.send(`[null,"${++c.ref}","phoenix","heartbeat",{}]`);
      sent++;
    }
  }, tickMs);
  return beats;
}

// -- fanout: one room grown to each size, one sender's new_msg broadcasts to all of it ---------
const PRESENCE_STATE = Buffer.from('","presence_state",');
const NEW_MSG = Buffer.from('","new_msg",');
const SEQ = Buffer.from('"_s":');
const SENT_US = Buffer.from('"_t":');

function numberAfter(buf, key) {
  const i = buf.indexOf(key);
  return i < 0 ? -1 : parseFloat(buf.toString('latin1', i + key.length, i + key.length + 24));
}

function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  return Promise.race([promise.then(() => true), late]).finally(() => clearTimeout(timer));
}

// Joined when the reply is ok, or with `--join-until presence_state` when the member also has
// the room's presence: the gateway sends it after every join, and only then is the join done.
async function joinRoom(c, topic) {
  let seen = null;
  const state = new Promise((resolve) => { seen = resolve; });
  if (A['join-until'] === 'presence_state') {
    c.onFrame = (data) => { if (inHead(data, PRESENCE_STATE)) seen(); };
  } else seen();
  await c.call('1', topic, 'phx_join');
  if (!(await within(state, 30000))) throw new Error('no presence_state 30 s after the join');
}

async function fanout() {
  const sizes = A.sizes.split(',').map(Number);
  needSockets(Math.max(...sizes) + 1);
  const topic = `room:${randomUUID()}`;
  const budgetEnd = now() + Number(A['join-budget']) * 1000;
  const fan = { seq: 0, count: [], last: [], expected: 0, hist: null, done: null, end: null };
  const sender = await connect(`fan-${NONCE}-sender`);
  await joinRoom(sender, topic);
  sender.onFrame = null; // its own copies are not counted
  const members = [];
  const rows = [];
  let id = 0;
  // The gateway closes a socket silent for 60 s: a large room takes longer than that to grow.
  const beating = [sender];
  const beats = heartbeats(beating);
  const joined = (c) => {
    c.onFrame = (data) => counted(fan, data);
    members.push(c);
    beating.push(c);
  };
  for (const size of sizes) {
    const a = mark();
    const before = members.length;
    const user = () => `fan-${NONCE}-${id++}`;
    const errors = await grow(members, size, topic, budgetEnd, user, joined);
    const b = mark();
    await sleep(1500); // the last joins' presence windows (at most 1 s) go out first
    beats.paused = true;
    rows.push({
      size,
      members: members.length,
      joins_per_s: (members.length - before) / ((b.t - a.t) / 1000),
      join: span(a, b),
      join_errors: errors.count,
      first_errors: errors.first,
      budget_ended: members.length < size,
      ...(await broadcasts(sender, topic, members.length, fan)),
    });
    beats.paused = false;
  }
  beats.stop();
  await closeAll([sender, ...members]);
  return { workload: 'fanout', topic_members: members.length, sizes: rows };
}

// Closed loop: `in-flight` members connecting and joining at a time until the room has `size`.
async function grow(members, size, topic, budgetEnd, user, joined) {
  const errors = { count: 0, first: [] };
  let pending = 0;
  const worker = async () => {
    while (members.length + pending < size && now() < budgetEnd && errors.count < 100) {
      pending++;
      let c = null;
      try {
        c = await connect(user());
        await joinRoom(c, topic);
        joined(c);
      } catch (err) {
        errors.count++;
        if (errors.first.length < 3) errors.first.push(String(err.message || err));
        if (c) c.ws.terminate();
      }
      pending--;
    }
  };
  await Promise.all(Array.from({ length: Number(A['in-flight']) }, worker));
  return errors;
}

function counted(fan, data) {
  if (!inHead(data, NEW_MSG)) return; // presence diffs
  const t = now();
  const s = numberAfter(data, SEQ);
  const n = (fan.count[s] = (fan.count[s] || 0) + 1);
  fan.last[s] = t;
  if (fan.hist) fan.hist.add(t - numberAfter(data, SENT_US) / 1000);
  if (n === fan.expected && fan.done) {
    fan.end = fineMark();
    fan.done();
  }
}

// K broadcasts, each sent once the previous one reached every member and `spacing-ms` passed.
// CPU is summed over the bursts (send to the last member's copy), where the server is busy.
async function broadcasts(sender, topic, expected, fan) {
  const k = Number(A.broadcasts);
  fan.hist = new Hist();
  fan.expected = expected;
  const rates = [];
  const lasts = [];
  let delivered = 0;
  let late = 0;
  const cpu = { wall_s: 0, srv_cpu_s: 0, gen_cpu_s: 0 };
  for (let j = 0; j < k; j++) {
    const s = fan.seq++;
    const done = new Promise((resolve) => { fan.done = resolve; });
    fan.end = null;
    const a = fineMark();
    const payload = `{"body":"fan-out message","_t":${Math.round(a.t * 1000)},"_s":${s}}`;
    sender.ws.send(`["1","${++sender.ref}","${topic}","new_msg",${payload}]`);
    if (!(await within(done, 10000))) late++;
    const b = fan.end || fineMark();
    fan.done = null;
    const got = fan.count[s] || 0;
    const lastMs = (fan.last[s] ?? b.t) - a.t;
    delivered += got;
    lasts.push(lastMs);
    rates.push(got / (lastMs / 1000));
    for (const [key, value] of Object.entries(span(a, b))) cpu[key] += value;
    await sleep(Number(A['spacing-ms']));
  }
  const result = {
    broadcasts: k,
    deliveries: delivered,
    expected: k * expected,
    incomplete: late,
    deliveries_per_s: median(rates),
    last_ms: median(lasts),
    p50_ms: fan.hist.q(0.5),
    p99_ms: fan.hist.q(0.99),
    ...cpu,
  };
  fan.hist = null;
  return result;
}

function median(values) {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const WORKLOADS = { echo, relay, churn, conns, fanout };
if (!WORKLOADS[A.workload]) throw new Error(`unknown workload ${A.workload}`);
const result = await WORKLOADS[A.workload]();
// Exit rather than wait for the event loop to empty: a socket the server has not finished
// closing must not hold the figures back.
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
