-- The rule sets instances have published (files: JSON map of file name -> content), and the
-- one in force, so that every instance on this database decides with the same rules.
CREATE TABLE rule_sets (
    fingerprint TEXT PRIMARY KEY,
    files       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE rules_in_force (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL REFERENCES rule_sets(fingerprint),
    changed_at  BIGINT NOT NULL
);
