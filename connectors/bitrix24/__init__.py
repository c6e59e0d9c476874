"""The Bitrix24 connector: a deal is the engagement; events in, a deal snapshot out (fetched
with `batch`), one agency-internal sticky timeline comment written back."""
