//! ServiceWithHealthchecks API: types, defaults, validation, conversion. Pure, no I/O.
