"""Helpers shared by the benchmark scripts' Python parts (bench-run.sh, bench-scale.sh, soak.sh)."""
import os
import re
import subprocess


def redis_info(port):
    """(keys written: HSET and RESTORE calls, bytes received) from Redis's INFO."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "all"], capture_output=True, text=True).stdout
    keys = sum(int(m) for m in re.findall(r"cmdstat_(?:hset|restore):calls=(\d+)", out))
    net = re.search(r"total_net_input_bytes:(\d+)", out)
    return (keys, int(net.group(1)) if net else 0)


def per_key(cpu, before, after):
    """Redis CPU and bytes per key written between two redis_info() readings."""
    keys, net = after[0] - before[0], after[1] - before[1]
    if keys == 0:
        return "no keys written"
    return f"{keys} keys written, {cpu / max(keys, 1) * 1e6:.1f} µs of Redis CPU and {net / max(keys, 1):.0f} bytes sent per key"


def cpu(pid):
    """CPU seconds (user + system) process `pid` has used so far."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def thread_times(pid):
    """{thread id: (name, CPU seconds so far)} of process `pid`, names with
    trailing digits folded (librdkafka's `rdk:broker111` -> `rdk:broker`)."""
    out = {}
    hz = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            s = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = re.sub(r"[0-9]+$", "", s[s.index("(") + 1:s.rindex(")")])
        f = s.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(f[11]) + int(f[12])) / hz)
    return out


def by_name(times):
    """CPU seconds per thread name of thread_times()' result."""
    out = {}
    for name, t in times.values():
        out[name] = out.get(name, 0) + t
    return out


def threads(pid):
    """CPU seconds per thread name of process `pid` so far."""
    return by_name(thread_times(pid))


def run_sampling_threads(args, env):
    """Run `args` to its end; returns (returncode, stderr, CPU seconds per
    thread name). Each thread's time is as last seen, every 50 ms, before
    it ended (threads that end early are kept)."""
    import threading
    import time
    p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()))
    reader.start()
    seen = {}
    while p.poll() is None:
        try:
            seen.update(thread_times(p.pid))
        except OSError:
            pass
        time.sleep(0.05)
    reader.join()
    return p.returncode, err[0] if err else "", by_name(seen)


def threads_line(seen, total=None):
    """"name 1.23 s, ..." for the threads that used 10 ms or more, busiest
    first. With the process's `total` CPU time, what threads that had ended
    before the last look used (each checkpoint's encoder is a thread of its
    own) is shown as "ended"."""
    seen = dict(seen)
    if total is not None and total - sum(seen.values()) >= 0.01:
        seen["ended"] = total - sum(seen.values())
    busy = sorted(((v, n) for n, v in seen.items() if v >= 0.01), reverse=True)
    return ", ".join(f"{n} {v:.2f} s" for v, n in busy)


class Redis:
    """A minimal RESP client: enough to dump a database."""

    def __init__(self, port, db):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.f = self.sock.makefile("rb")
        self.call(["SELECT", str(db)])

    def send(self, cmds):
        out = []
        for args in cmds:
            out.append(b"*%d\r\n" % len(args))
            for a in args:
                a = a.encode() if isinstance(a, str) else a
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return [self.read() for _ in cmds]

    def call(self, args):
        return self.send([args])[0]

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode()
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")


def redis_dump(port, db, drop=()):
    """Every key of Redis database `db`: (sorted hash fields without the
    fields named in `drop`, whether it has a TTL)."""
    r = Redis(port, db)
    out, cursor = {}, "0"
    while True:
        cursor, keys = r.call(["SCAN", cursor, "COUNT", "1000"])
        replies = r.send([c for k in keys for c in (["HGETALL", k], ["TTL", k])])
        for i, k in enumerate(keys):
            h, ttl = replies[2 * i], replies[2 * i + 1]
            out[k] = (tuple(sorted((f, v) for f, v in zip(h[::2], h[1::2]) if f not in drop)), ttl > 0)
        if cursor == "0":
            return out
