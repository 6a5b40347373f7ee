"""One module per component of the local stack; each defines a :class:`infra.component.Component`."""
