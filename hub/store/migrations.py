"""Versioned schema migrations for the SQLite store (tracked in ``PRAGMA user_version``)."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE events (
            id   INTEGER PRIMARY KEY,
            ts   REAL NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX events_kind ON events(kind, id);
        CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
        CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;

        CREATE TABLE audit (
            id     INTEGER PRIMARY KEY AUTOINCREMENT,
            ts     REAL NOT NULL,
            actor  TEXT NOT NULL,
            role   TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            source TEXT NOT NULL,
            result TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_actor ON audit(actor, id);
        CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

        CREATE TABLE alarms (
            id          TEXT PRIMARY KEY,
            rule        TEXT NOT NULL,
            source      TEXT NOT NULL,
            level       TEXT NOT NULL,
            state       TEXT NOT NULL,
            raised_ts   REAL NOT NULL,
            updated_ts  REAL NOT NULL,
            ack_by      TEXT,
            ack_ts      REAL,
            ack_comment TEXT,
            shelved_until REAL,
            data        TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX alarms_state ON alarms(state);

        CREATE TABLE call_records (
            id         TEXT PRIMARY KEY,
            conference TEXT,
            leg        TEXT NOT NULL,
            direction  TEXT NOT NULL,
            remote     TEXT NOT NULL,
            trunk      TEXT,
            start_ts   REAL NOT NULL,
            answer_ts  REAL,
            end_ts     REAL,
            status     INTEGER,
            reason     TEXT
        );
        CREATE INDEX call_records_start ON call_records(start_ts);

        CREATE TABLE recordings (
            id         TEXT PRIMARY KEY,
            conference TEXT,
            talker     TEXT,
            kind       TEXT NOT NULL,
            path       TEXT NOT NULL,
            codec      TEXT NOT NULL,
            start_ts   REAL NOT NULL,
            end_ts     REAL,
            bytes      INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX recordings_conference ON recordings(conference, start_ts);
        """,
    ),
    (
        2,
        # The warning core: current alarms gain their condition and count; every transition,
        # acknowledgement and action goes into an append-only history.
        """
        ALTER TABLE alarms ADD COLUMN condition TEXT NOT NULL DEFAULT 'normal';
        ALTER TABLE alarms ADD COLUMN count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE alarms ADD COLUMN shelve_reason TEXT;
        CREATE INDEX alarms_level ON alarms(level, state);
        CREATE INDEX alarms_source ON alarms(source);

        CREATE TABLE alarm_history (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            alarm_id  TEXT NOT NULL,
            ts        REAL NOT NULL,
            old_state TEXT NOT NULL,
            new_state TEXT NOT NULL,
            cause     TEXT NOT NULL,
            actor     TEXT NOT NULL DEFAULT '',
            comment   TEXT NOT NULL DEFAULT '',
            data      TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX alarm_history_alarm ON alarm_history(alarm_id, id);
        CREATE TRIGGER alarm_history_append_only_update BEFORE UPDATE ON alarm_history
            BEGIN SELECT RAISE(ABORT, 'the alarm history is append-only'); END;
        CREATE TRIGGER alarm_history_append_only_delete BEFORE DELETE ON alarm_history
            BEGIN SELECT RAISE(ABORT, 'the alarm history is append-only'); END;
        """,
    ),
    (
        3,
        # Metric series: one row per series and minute (min/avg/max/count), written as each
        # minute closes; labels are canonical JSON (sorted keys) so that they key the row.
        """
        CREATE TABLE metric_rollups (
            metric  TEXT NOT NULL,
            source  TEXT NOT NULL,
            labels  TEXT NOT NULL DEFAULT '{}',
            minute  REAL NOT NULL,
            unit    TEXT NOT NULL DEFAULT '',
            min     REAL NOT NULL,
            avg     REAL NOT NULL,
            max     REAL NOT NULL,
            count   INTEGER NOT NULL,
            PRIMARY KEY (metric, source, labels, minute)
        );
        CREATE INDEX metric_rollups_minute ON metric_rollups(minute);
        """,
    ),
    (
        4,
        # Conferences: a recording row says who talked in it (participant ids) and when
        # (JSON lists of [participant, start, end]); the engine writes a row when a file
        # opens and replaces it when the file is finished.
        """
        ALTER TABLE recordings ADD COLUMN talkers TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE recordings ADD COLUMN segments TEXT NOT NULL DEFAULT '[]';
        CREATE INDEX recordings_start ON recordings(start_ts);
        """,
    ),
    (
        5,
        # Alarm retention: a normal alarm past the site's retention is deleted with its
        # history (one transaction, alarm row first). The history stays append-only while
        # its alarm is stored; alarms_updated finds the old normal ones.
        """
        DROP TRIGGER alarm_history_append_only_delete;
        CREATE TRIGGER alarm_history_append_only_delete BEFORE DELETE ON alarm_history
            WHEN EXISTS (SELECT 1 FROM alarms WHERE id = OLD.alarm_id)
            BEGIN SELECT RAISE(ABORT, 'the alarm history is append-only'); END;
        CREATE INDEX alarms_updated ON alarms(state, updated_ts);
        """,
    ),
)

LATEST = MIGRATIONS[-1][0]
