"""ClientGuard: warns a digital agency, never its client, when an engagement breaks a
service-quality rule. The pure judgement lives in `plugin.core` and `plugin.rules`; the web
service is assembled in `plugin.app` (kept out of this module so the offline CLI does not
load the web stack)."""
