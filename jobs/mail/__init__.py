"""Email as tracked jobs: `email.send` (one message, sent at most once) and `email.bulk` (many, fanned out).

    from jobs.mail.services import email_send
    email_send(tenant=tenant, to=["ann@example.com"], template="welcome", context={...}, key="welcome:42")
"""
