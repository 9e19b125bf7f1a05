"""Stringee (CONTRACT.md §13): the second provider, one account at a time.

account.py      StringeeAccount: keys, caller line, and the templates' voices, recordings, menus
auth.py         the REST JWT (HS256, cty stringee-api;v=1), made locally, renewed before expiry
callout.py      the callout body from the rendered call's provider-neutral script (pure)
client.py       StringeeClient: execute(request) like OMICall's, GETs; errors mapped at this edge
records.py      the one place that reads its callbacks and call-log items; signatures
keys.py         the keys pressed, kept from the input callback until the call ends
webhook.py      POST /webhooks/stringee/<account>/<token>, behind the webhook listener
calllog.py      the call-log search for reconciliation, at most 100 requests a minute

Wiring, per Stringee account of the accounts file (secrets read from their files first):
  account = StringeeAccount(name=…, key_sid=…, key_secret=…, signing_secret=…, from_number=…, …)
  url = callout.callback_url(AUTOCALL_WEBHOOK_PUBLIC_URL, account.name, webhook token)
  provider = StringeeClient(session, account, metrics, event_url=url, timeout=…,
                            connect_timeout=…)   # .execute(request) and .call_time as OMICall's
  Listener(…, stringee=stringee_webhook(accounts, results, store, templates, prefix))
Failures: AccountUnable (BalanceTooLow, code stringee_8) and Unauthorized: the account cannot
call (hold or fail over); Throttled and ProviderUnavailable: transient, fail over; any other
ProviderError (`stringee_<r>`), TemplateError (an unmapped recording or menu), OutcomeUnknown:
never fail over.
"""
