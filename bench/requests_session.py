"""The reference page's Python example with a Session: N GETs.
Usage: requests_session.py BASE_URL CONN N"""
import resource
import sys
import time

import requests

base, conn, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = f"{base}/sip/connection/{conn}/tnlease"
headers = {"accept": "application/json", "X-Auth-Token": "bench-token"}
s = requests.Session()
s.get(url, headers=headers).json()


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


c0, w0 = cpu(), time.monotonic()
for _ in range(n):
    r = s.get(url, headers=headers)
    assert r.status_code == 200
    r.json()
print(f"cpu_us={(cpu() - c0) / n * 1e6:.2f} wall_us={(time.monotonic() - w0) / n * 1e6:.2f}")
