"""Stringee (CONTRACT.md §13): the second provider, one account at a time.

account.py      StringeeAccount: keys, caller line, and the templates' voices, recordings, menus
auth.py         the REST JWT (HS256, cty stringee-api;v=1), made locally, renewed before expiry
callout.py      the callout body from the rendered call's provider-neutral script (pure)
client.py       StringeeClient: execute(request) like OMICall's, GETs; errors mapped at this edge
records.py      the one place that reads its callbacks and call-log items; signatures
keys.py         the keys pressed, kept from the input callback until the call ends
webhook.py      POST /webhooks/stringee/<account>/<token>, behind the webhook listener
calllog.py      the call-log search for reconciliation, at most 100 requests a minute
"""
