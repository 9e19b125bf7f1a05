"""The providers: each one's client and the records it sends, behind one door per provider.

omicall/        OMICall: the auto-call client, its call records, its call-history search
"""
