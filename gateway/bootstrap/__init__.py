"""The composition root: the only code that names adapters (`adapters/`, `blacklist_cache/`). `server` builds
everything a serving gateway uses, `commands` what each `onecard` command uses, `exits` maps what fails at the
edge to exit codes. Everything else is given its collaborators, typed by the ports of `gateway.ports`."""
