"""The journal's roster: typed entities, versioned state, OneRoster import, reconciliation."""
