"""Email service providers' bounce and complaint events. Each provider has a module that checks its signature
and reads its format into `events.Event`s (`ses`, `postmark`, `mailgun`, `sendgrid`); `settings` reads what
they need from the environment / .env; `record` stores verified events once per event id.
"""
