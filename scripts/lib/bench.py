"""Helpers shared by the benchmark scripts' Python parts (scripts/bench-run.sh)."""
import os
import re
import subprocess


def redis_info(port):
    """(HSET calls, bytes received) from Redis's INFO."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "all"], capture_output=True, text=True).stdout
    hset = re.search(r"cmdstat_hset:calls=(\d+)", out)
    net = re.search(r"total_net_input_bytes:(\d+)", out)
    return (int(hset.group(1)) if hset else 0, int(net.group(1)) if net else 0)


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
