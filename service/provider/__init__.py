"""The providers: each one's client and the records it sends, behind one door per provider.

session.py      the HTTP session a client calls over (sized to the concurrency, proxies read once)
omicall/        OMICall: the auto-call client, its call records, its call-history search
stringee/       Stringee: the REST JWT, the callout, its signed callbacks, its call log
"""
