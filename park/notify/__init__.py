"""Notifications of finished jobs, by e-mail (SMTP) and webhook.

`plan` decides what is due (pure, with the clock passed in); `render` writes the messages
(pure); `send` talks SMTP and HTTP; `notifier` is the log consumer that runs them and
records every attempt and outcome as events (see docs/notifications.md).
"""
