"""The timings of the worker protocol, in one place: the server, its workers and the
command line take them from here, so a lease means the same everywhere.

Pure constants (the core may import them).
"""

from __future__ import annotations

# How long a granted unit stays a worker's without news from it (`park serve
# --lease-seconds`); the registration answer tells each worker.
LEASE_SECONDS = 30.0
# A worker heartbeats the leases of its running units this many times per lease, so one
# lost heartbeat never loses a lease.
HEARTBEATS_PER_LEASE = 3
# How often the service looks for leases that ran out.
REAP_INTERVAL = 0.5
# How long a worker's lease request waits for work to appear (long poll), and the most a
# request may ask to wait; the longest batch of work (seconds) a request may ask for.
LEASE_POLL_SECONDS = 10.0
MAX_LEASE_WAIT = 60.0
MAX_JOB_WAIT = 60.0  # GET /v1/jobs/{id}?wait=: the longest wait for a job's end
MAX_BATCH_SECONDS = 3600.0
# Shared log (Kafka): an ask for work that waits less than this is answered at once, even
# with nothing, and its asker waits this long for that answer; the leader answers an ask
# only until this margin before its asker stops waiting; a command waits this long for
# the projections to reach the offset it produced.
SHORT_ASK = 3.0
ANSWER_MARGIN = 1.0
CATCH_UP_TIMEOUT = 30.0
# Server-sent event streams: a comment line this often keeps proxies from closing them.
STREAM_PING_SECONDS = 10.0
