"""ClientGuard: warns a digital agency, never its client, when an engagement breaks a
service-quality rule. The pure judgement lives in `plugin.core` and `plugin.rules`."""
