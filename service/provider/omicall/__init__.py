"""OMICall (CONTRACT.md §5, §9, §12): what the service sends it and reads from it.

client.py       token cache, one request per call, webhook registrations (sent through ../edge.py)
answers.py      what its answers mean: success, a lapsed token, or a leaf of the error tree (§12)
records.py      the one place that reads its records: live events, CDRs, call-history items
history.py      the call-history search, and transaction lookups batched into few requests
"""

# Where the service's webhook listener takes its call records (then /<token>): registered with
# the provider, checked by `doctor`.
WEBHOOK_PATH = "/webhooks/omicall"
